"""What the pages say when something is refused, in the user's language (Indonesian by default).

The services raise errors with a ``key`` and parameters (``LifecycleError``,
``AccountError``); this maps each key to a sentence in the message catalogue.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from flask_babel import gettext as _

from ..agencies.lifecycle import LifecycleError
from .accounts import AccountError

_TEXTS: dict[str, Callable[[Mapping[str, object]], str]] = {
    "required": lambda p: _("Isian %(what)s wajib diisi.", what=_field(p.get("what"))),
    "too_long": lambda p: _("%(what)s terlalu panjang: %(length)s karakter, paling banyak %(limit)s.",
                            what=_field(p.get("what")), length=p.get("length"), limit=p.get("limit")),
    "unknown_status": lambda p: _("Status %(status)s tidak dikenal.", status=p.get("status")),
    "status_received": lambda p: _("Laporan tidak bisa dikembalikan ke status diterima; gunakan "
                                   "\"Bukan wewenang\" untuk mengembalikannya ke pusat."),
    "transition": lambda p: _("Laporan berstatus %(current)s tidak bisa menjadi %(status)s.",
                              current=p.get("current"), status=p.get("status")),
    "needs_agency": lambda p: _("Laporan masih di antrean pusat: disposisikan dulu ke instansi sebelum "
                                "menjadi %(status)s.", status=p.get("status")),
    "unknown_agency": lambda p: _("Instansi %(agency)s tidak terdaftar.", agency=p.get("agency")),
    "not_disposable": lambda p: _("Laporan berstatus %(current)s tidak bisa didisposisikan lagi.",
                                  current=p.get("current")),
    "already_at": lambda p: _("Laporan sudah berada di %(agency)s.", agency=p.get("agency")),
    "not_a_unit": lambda p: _("%(agency)s bukan unit Anda; laporan yang bukan wewenang Anda dikembalikan "
                              "ke pusat.", agency=p.get("agency")),
    "central_cannot_return": lambda p: _("Admin pusat mendisposisikan laporan ke instansi."),
    "not_returnable": lambda p: _("Laporan berstatus %(current)s tidak bisa dikembalikan ke pusat.",
                                  current=p.get("current")),
    "too_many_parts": lambda p: _("Jawaban memerlukan %(parts)s SMS, paling banyak %(limit)s: persingkat "
                                  "jawaban atau kirim versi ringkas.", parts=p.get("parts"), limit=p.get("limit")),
    "bad_pointer": lambda p: _("Penunjuk paling banyak %(limit)s karakter GSM-7 (huruf, angka, tanda baca "
                               "dasar), misalnya tautan pendek.", limit=p.get("limit")),
    "bad_email": lambda p: _("%(email)s bukan alamat e-mail.", email=p.get("email")),
    "bad_role": lambda p: _("Peran %(role)s tidak dikenal.", role=p.get("role")),
    "account_needs_agency": lambda p: _("Akun staf dan admin instansi harus memilih instansi."),
    "central_agency": lambda p: _("Admin pusat tidak terikat pada instansi."),
    "exists": lambda p: _("%(email)s sudah punya akun.", email=p.get("email")),
    "password_mismatch": lambda p: _("Kedua kata sandi tidak sama."),
    "password_short": lambda p: _("Kata sandi minimal %(minimum)s karakter.", minimum=p.get("minimum")),
    "password_long": lambda p: _("Kata sandi paling banyak %(maximum)s karakter.", maximum=p.get("maximum")),
    "password_email": lambda p: _("Kata sandi tidak boleh sama dengan alamat e-mail."),
    # Intervensi and teguran (workspace/coordination.py), coordinators' accounts.
    "central_queue": lambda p: _("Laporan masih di antrean pusat: disposisikan dulu ke instansi."),
    "not_watched": lambda p: _("%(agency)s tidak Anda pantau.", agency=p.get("agency")),
    "answered": lambda p: _("Sudah dijawab."),
    "unknown_coordinator": lambda p: _("%(coordinator)s bukan koordinator yang terdaftar.",
                                       coordinator=p.get("coordinator")),
}


def _field(what: object) -> str:
    names = {"note": _("catatan"), "reason": _("alasan"), "text": _("teks jawaban"), "answer": _("jawaban")}
    return names.get(str(what), str(what))


def refusal(exc: LifecycleError | AccountError) -> str:
    """The sentence for a refused action."""
    text = _TEXTS.get(exc.key)
    if text is None:
        return _("Tidak dapat dilakukan: %(reason)s", reason=str(exc))
    return text(exc.params)
