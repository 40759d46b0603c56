"""Per-channel send rates in SMS segments, shared by every sender process through Redis.

One Lua script (atomic in Redis) implements GCRA, the "virtual scheduling"
form of a token bucket: one key per channel holds the theoretical arrival time
(TAT) of the next segment; a request for n segments is granted when the TAT
minus the burst allowance is not in the future, and moves it n emission
intervals on. A caller asks for a whole claim at once (a list of costs) and
gets the longest prefix that fits, plus how long to wait for the next one.

A channel can also be *parked*: after a 429 or a throttling error nothing is
granted until the park key expires, in every process, so the senders back off
together instead of hammering the provider in a loop.

Why not the ``limits`` package: its moving window stores one Redis entry per
unit of cost (a 500 segment/s channel would write 500 list entries a second)
and its fixed window lets twice the rate through at window edges; neither says
how long to wait, nor grants part of a batch. GCRA is exact, one key, O(1).
"""

from __future__ import annotations

from dataclasses import dataclass

from redis import Redis

KEY_PREFIX = "sms-gateway:rate:"
PARK_PREFIX = "sms-gateway:park:"

# KEYS[1] tat key, KEYS[2] park key; ARGV[1] emission interval in µs,
# ARGV[2] burst allowance in µs, ARGV[3..] costs in segments.
# Returns {granted, wait_µs}.
_GCRA = """
local park = redis.call('PTTL', KEYS[2])
if park > 0 then return {0, park * 1000} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local granted = 0
local wait = 0
for i = 3, #ARGV do
  local new_tat = tat + tonumber(ARGV[i]) * interval
  -- An idle channel always takes one message, even one longer than the burst.
  if tat <= now or new_tat - burst <= now then
    tat = new_tat
    granted = granted + 1
  else
    wait = new_tat - burst - now
    break
  end
end
if granted > 0 then
  redis.call('SET', KEYS[1], tat, 'PX', math.ceil((tat - now) / 1000) + 1000)
end
return {granted, wait}
"""


@dataclass(frozen=True)
class Grant:
    """How many of the requested messages may go now, and the wait in seconds before the next."""

    granted: int
    wait: float


class SegmentRate:
    """The shared rate of one channel: ``per_second`` segments, bursts of up to ``burst_seconds`` worth."""

    def __init__(self, redis: Redis, channel: str, per_second: float | None, burst_seconds: float = 1.0) -> None:
        self.redis = redis
        self.channel = channel
        self.per_second = per_second if per_second and per_second > 0 else None
        self._script = redis.register_script(_GCRA)
        if self.per_second:
            self.interval_us = 1_000_000 / self.per_second
            # At least one segment: a slow channel (a modem) still sends at once when idle.
            self.burst_us = max(self.interval_us, burst_seconds * 1_000_000)

    def acquire(self, costs: list[int]) -> Grant:
        """Take the longest prefix of ``costs`` (segments per message) the rate allows now."""
        if not costs:
            return Grant(0, 0.0)
        if self.per_second is None:  # unlimited (the console), but a park still holds
            ttl = int(self.redis.pttl(PARK_PREFIX + self.channel))
            return Grant(0, ttl / 1000) if ttl > 0 else Grant(len(costs), 0.0)
        granted, wait_us = self._script(keys=[KEY_PREFIX + self.channel, PARK_PREFIX + self.channel],
                                        args=[int(self.interval_us), int(self.burst_us), *costs])
        return Grant(int(granted), int(wait_us) / 1_000_000)

    def park(self, seconds: float) -> None:
        """Grant nothing to anybody on this channel for ``seconds`` (the provider said: slow down)."""
        self.redis.set(PARK_PREFIX + self.channel, "1", px=max(1, int(seconds * 1000)))

    def parked_for(self) -> float:
        """Seconds the channel stays parked (0 when it is not)."""
        return max(0, int(self.redis.pttl(PARK_PREFIX + self.channel))) / 1000

    def queue_seconds(self, segments: int) -> float | None:
        """How long ``segments`` take at this rate (None: unlimited)."""
        return segments / self.per_second if self.per_second else None
