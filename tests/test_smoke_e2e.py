from tests.conftest import PUBLIC_BASE, TWILIO_TOKEN
from tests.support import twilio_signature


def post_sms(client, body, sid="SM1", sender="081234567890"):
    params = {"MessageSid": sid, "From": sender, "To": "1708", "Body": body, "AccountSid": "ACtest"}
    sig = twilio_signature(TWILIO_TOKEN, PUBLIC_BASE + "/sms/twilio", params)
    return client.post("/sms/twilio", data=params, headers={"X-Twilio-Signature": sig})


def test_smoke(client, work, fake_twilio):
    r = post_sms(client, "KEMENHUB ADUAN bus masih angkut pemudik")
    assert r.status_code == 200, r.data
    work()
    assert len(fake_twilio.messages) == 1
    print(fake_twilio.messages[0].form)
