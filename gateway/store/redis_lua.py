"""The Lua scripts of the Redis store: every read-then-write operation, each atomic inside Redis.

Scripts receive the key prefix as ``ARGV[1]`` where they build key names (standalone Redis only). Values that
must sort or compare exactly (microseconds since the epoch) travel as integers, never through ``cjson``, which
would print large numbers in exponent form; ``cjson`` only carries the queue entries, whose values are text.
"""

from __future__ import annotations

_ACTIVE_CONVERSATION = """
local id = redis.call('GET', KEYS[1])
if id then
  local raw = redis.call('GET', ARGV[1] .. 'conv:' .. id)
  if raw then return {0, raw} end
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('SET', ARGV[1] .. 'conv:' .. ARGV[2], ARGV[3])
redis.call('SADD', ARGV[1] .. 'status:' .. ARGV[5], ARGV[2])
redis.call('ZADD', ARGV[1] .. 'created', ARGV[4], ARGV[2])
return {1, ARGV[3]}
"""

# KEYS: the active key, then the processed inbound id's key when there is one.
# ARGV: prefix, id, json, created µs, status, '1' if active, done until (ms, or ''), then every status name.
_SAVE_CONVERSATION = """
local current = redis.call('GET', KEYS[1])
if ARGV[6] == '1' then
  if current and current ~= ARGV[2] and redis.call('EXISTS', ARGV[1] .. 'conv:' .. current) == 1 then
    return 0
  end
  redis.call('SET', KEYS[1], ARGV[2])
elseif current == ARGV[2] then
  redis.call('DEL', KEYS[1])
end
redis.call('SET', ARGV[1] .. 'conv:' .. ARGV[2], ARGV[3])
for i = 8, #ARGV do redis.call('SREM', ARGV[1] .. 'status:' .. ARGV[i], ARGV[2]) end
redis.call('SADD', ARGV[1] .. 'status:' .. ARGV[5], ARGV[2])
redis.call('ZADD', ARGV[1] .. 'created', ARGV[4], ARGV[2])
if KEYS[2] then redis.call('SET', KEYS[2], '1', 'PXAT', ARGV[7]) end
return 1
"""

# KEYS: entry, conversation's list. ARGV: prefix, id, "<delivery code><provider id>\n<data>", provider id or '',
# seconds the provider id is kept.
_APPEND_ENTRY = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[3])
redis.call('RPUSH', KEYS[2], ARGV[2])
if ARGV[4] ~= '' then redis.call('SET', ARGV[1] .. 'provider:' .. ARGV[4], ARGV[2], 'EX', ARGV[5]) end
return 1
"""

# KEYS: entry, entry hash of the layout before (``hg:entry:<id>``). ARGV: prefix, id, delivery code, delivery,
# provider id or '', seconds the provider id is kept. The delivery code and provider id head the entry's value.
_SET_DELIVERY = """
local v = redis.call('GET', KEYS[1])
if v then
  local nl = string.find(v, '\\n', 1, true)
  local pmid = string.sub(v, 2, nl - 1)
  if ARGV[5] ~= '' then
    pmid = ARGV[5]
    redis.call('SET', ARGV[1] .. 'provider:' .. pmid, ARGV[2], 'EX', ARGV[6])
  end
  redis.call('SET', KEYS[1], ARGV[3] .. pmid .. string.sub(v, nl), 'KEEPTTL')
  return 1
end
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
redis.call('HSET', KEYS[2], 'delivery', ARGV[4])
if ARGV[5] ~= '' then
  redis.call('HSET', KEYS[2], 'pmid', ARGV[5])
  redis.call('SET', ARGV[1] .. 'provider:' .. ARGV[5], ARGV[2], 'EX', ARGV[6])
end
return 1
"""

# KEYS: entries, sequence, queue names. ARGV: prefix, id, queue, rank, arrival µs (20 digits), entry JSON.
_ENQUEUE = """
local old = redis.call('HGET', KEYS[1], ARGV[2])
if old then
  local e = cjson.decode(old)
  redis.call('ZREM', ARGV[1] .. 'queue:waiting:' .. e['queue'], e['member'])
  if e['taken_by'] ~= cjson.null then redis.call('SREM', ARGV[1] .. 'held:' .. e['taken_by'], ARGV[2]) end
end
local seq = redis.call('INCR', KEYS[2])
local member = ARGV[4] .. ':' .. ARGV[5] .. ':' .. string.format('%012d', seq) .. ':' .. ARGV[2]
local entry = cjson.decode(ARGV[6])
entry['member'] = member
redis.call('HSET', KEYS[1], ARGV[2], cjson.encode(entry))
redis.call('ZADD', ARGV[1] .. 'queue:waiting:' .. ARGV[3], 0, member)
redis.call('SADD', KEYS[3], ARGV[3])
return 1
"""

# ARGV: prefix, id, listener ('' to hand back), taken at µs, takes older than this µs are dropped.
# Returns the entry, or false when the change is not allowed. A take is counted in ``takes:<queue>`` (scored by
# when) and the conversation joins ``held:<listener>``; a hand back leaves it.
_TAKE_OR_REQUEUE = """
local raw = redis.call('HGET', KEYS[1], ARGV[2])
if not raw then return false end
local e = cjson.decode(raw)
local waiting = ARGV[1] .. 'queue:waiting:' .. e['queue']
if ARGV[3] ~= '' then
  if e['taken_by'] ~= cjson.null then return false end
  redis.call('ZREM', waiting, e['member'])
  e['taken_by'] = ARGV[3]
  redis.call('SADD', ARGV[1] .. 'held:' .. ARGV[3], ARGV[2])
  local takes = ARGV[1] .. 'takes:' .. e['queue']
  redis.call('ZADD', takes, ARGV[4], ARGV[2])
  redis.call('ZREMRANGEBYSCORE', takes, '-inf', '(' .. ARGV[5])
elseif e['taken_by'] ~= cjson.null then
  redis.call('ZADD', waiting, 0, e['member'])
  redis.call('SREM', ARGV[1] .. 'held:' .. e['taken_by'], ARGV[2])
  e['taken_by'] = cjson.null
end
raw = cjson.encode(e)
redis.call('HSET', KEYS[1], ARGV[2], raw)
return raw
"""

_REMOVE_FROM_QUEUE = """
local raw = redis.call('HGET', KEYS[1], ARGV[2])
if not raw then return 0 end
local e = cjson.decode(raw)
redis.call('ZREM', ARGV[1] .. 'queue:waiting:' .. e['queue'], e['member'])
if e['taken_by'] ~= cjson.null then redis.call('SREM', ARGV[1] .. 'held:' .. e['taken_by'], ARGV[2]) end
redis.call('HDEL', KEYS[1], ARGV[2])
return 1
"""

_UPDATE_LISTENER = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""

# KEYS: item, conversation's pending ids, heads, sequence, its transcript entry. ARGV: id, conversation, payload,
# created, next. An id already put is ignored: pending or kept failed (the item), or sent (the item is deleted once
# sent when its transcript entry records the send: that entry, no longer pending, is the mark then).
_OUTBOX_PUT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local entry = redis.call('GET', KEYS[5])
if entry and string.sub(entry, 1, 1) ~= 'p' then return 0 end
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'conv', ARGV[2], 'payload', ARGV[3], 'created_us', ARGV[4],
           'next_us', ARGV[5], 'attempts', 0, 'status', 'pending')
redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[4]), ARGV[1])
if redis.call('ZCARD', KEYS[2]) == 1 then redis.call('ZADD', KEYS[3], ARGV[5], ARGV[2]) end
return 1
"""

# KEYS: heads. ARGV: prefix, now µs, limit, lease end µs. Returns each claimed item as {conversation, id, its
# fields (HGETALL)}, so a claim is never left without its caller knowing the items it claimed, even one whose
# fields it cannot read (set aside then, by ``outbox_set_aside``).
_OUTBOX_DUE = """
local ids = {}
for _, conv in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, ARGV[3])) do
  local head = redis.call('ZRANGE', ARGV[1] .. 'outbox:conv:' .. conv, 0, 0)[1]
  if head then
    redis.call('ZADD', KEYS[1], ARGV[4], conv)
    redis.call('HSET', ARGV[1] .. 'outbox:item:' .. head, 'next_us', ARGV[4])
    table.insert(ids, {conv, head, redis.call('HGETALL', ARGV[1] .. 'outbox:item:' .. head)})
  else
    redis.call('ZREM', KEYS[1], conv)
  end
end
return ids
"""

# KEYS: item, heads. ARGV: the lease end the caller holds (µs), the new end. Refused once claimed again since.
_OUTBOX_RENEW = """
if redis.call('HGET', KEYS[1], 'status') ~= 'pending' or redis.call('HGET', KEYS[1], 'next_us') ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'next_us', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[2], redis.call('HGET', KEYS[1], 'conv'))
return 1
"""

# KEYS: item, heads, transcript entry, its hash in the layout before. ARGV: prefix, id, status, field or '', value,
# seconds kept, the entry's delivery, provider id or '', the delivery's code, seconds the provider id is kept, the
# lease end the caller holds (µs) or '' (then unfenced). The entry shows the result in the same step (never sent but
# shown pending). A sent item keeps no payload (the transcript has the text): what is left tells it was sent, until
# it expires.
_OUTBOX_RESOLVE = """
if redis.call('HGET', KEYS[1], 'status') ~= 'pending' then return 0 end
if ARGV[11] ~= '' and redis.call('HGET', KEYS[1], 'next_us') ~= ARGV[11] then return 0 end
local conv = redis.call('HGET', KEYS[1], 'conv')
redis.call('HSET', KEYS[1], 'status', ARGV[3])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], ARGV[4], ARGV[5]) end
if ARGV[3] == 'sent' and redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('DEL', KEYS[1])  -- its transcript entry records the send (below): the mark ``outbox_put`` reads
elseif ARGV[3] == 'sent' then  -- rebuilt without the payload: a small hash takes Redis's compact encoding again
  local f = {'id', 'conv', 'created_us', 'next_us', 'attempts', 'status', 'pmid', 'parts_sent'}
  local v = redis.call('HMGET', KEYS[1], unpack(f))
  redis.call('DEL', KEYS[1])
  for i = 1, #f do if v[i] then redis.call('HSET', KEYS[1], f[i], v[i]) end end
  redis.call('EXPIRE', KEYS[1], ARGV[6])
else
  redis.call('EXPIRE', KEYS[1], ARGV[6])
end
local pending = ARGV[1] .. 'outbox:conv:' .. conv
redis.call('ZREM', pending, ARGV[2])
local head = redis.call('ZRANGE', pending, 0, 0)[1]
if head then
  redis.call('ZADD', KEYS[2], redis.call('HGET', ARGV[1] .. 'outbox:item:' .. head, 'next_us'), conv)
else
  redis.call('ZREM', KEYS[2], conv)
end
local v = redis.call('GET', KEYS[3])
if v then
  local nl = string.find(v, '\\n', 1, true)
  local pmid = string.sub(v, 2, nl - 1)
  if ARGV[8] ~= '' then
    pmid = ARGV[8]
    redis.call('SET', ARGV[1] .. 'provider:' .. pmid, ARGV[2], 'EX', ARGV[10])
  end
  redis.call('SET', KEYS[3], ARGV[9] .. pmid .. string.sub(v, nl), 'KEEPTTL')
elseif redis.call('EXISTS', KEYS[4]) == 1 then
  redis.call('HSET', KEYS[4], 'delivery', ARGV[7])
  if ARGV[8] ~= '' then
    redis.call('HSET', KEYS[4], 'pmid', ARGV[8])
    redis.call('SET', ARGV[1] .. 'provider:' .. ARGV[8], ARGV[2], 'EX', ARGV[10])
  end
end
return 1
"""

# KEYS: item, heads, the conversation's pending ids. ARGV: prefix, id, conversation, reason, seconds kept. An item
# whose stored fields cannot be read: failed (kept a while for an operator), out of its conversation's line.
_OUTBOX_SET_ASIDE = """
redis.call('HSET', KEYS[1], 'status', 'failed', 'last_error', ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('ZREM', KEYS[3], ARGV[2])
local head = redis.call('ZRANGE', KEYS[3], 0, 0)[1]
if head then
  redis.call('ZADD', KEYS[2], redis.call('HGET', ARGV[1] .. 'outbox:item:' .. head, 'next_us') or '0', ARGV[3])
else
  redis.call('ZREM', KEYS[2], ARGV[3])
end
return 1
"""

# KEYS: item, heads. ARGV: prefix, id, next µs, attempts, last error, parts sent (kept if larger), the lease end
# the caller holds (µs) or ''.
_OUTBOX_RESCHEDULE = """
if redis.call('HGET', KEYS[1], 'status') ~= 'pending' then return 0 end
if ARGV[7] ~= '' and redis.call('HGET', KEYS[1], 'next_us') ~= ARGV[7] then return 0 end
redis.call('HSET', KEYS[1], 'next_us', ARGV[3], 'attempts', ARGV[4], 'last_error', ARGV[5])
if tonumber(ARGV[6]) > tonumber(redis.call('HGET', KEYS[1], 'parts_sent') or '0') then
  redis.call('HSET', KEYS[1], 'parts_sent', ARGV[6])
end
local conv = redis.call('HGET', KEYS[1], 'conv')
if redis.call('ZRANGE', ARGV[1] .. 'outbox:conv:' .. conv, 0, 0)[1] == ARGV[2] then
  redis.call('ZADD', KEYS[2], ARGV[3], conv)
end
return 1
"""

# KEYS: timers, the conversation's timer members as an earlier layout kept them. ARGV: the members to cancel
# (every kind's for all); with all of them, the members of the earlier index go too.
_CANCEL_TIMERS = """
for _, member in ipairs(ARGV) do
  redis.call('ZREM', KEYS[1], member)
  redis.call('SREM', KEYS[2], member)
end
if #ARGV > 1 then
  for _, member in ipairs(redis.call('SMEMBERS', KEYS[2])) do redis.call('ZREM', KEYS[1], member) end
  redis.call('DEL', KEYS[2])
end
return 1
"""

# KEYS: timers, the conversation's timer members. ARGV: member, due µs.
_TIMER_DONE = """
local due = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not due or tonumber(due) ~= tonumber(ARGV[2]) then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('SREM', KEYS[2], ARGV[1])
return 1
"""

# KEYS: timers. ARGV: member, due µs as read, new due µs.
_TIMER_POSTPONE = """
local due = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not due or tonumber(due) ~= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
return 1
"""

# KEYS: the inbound id's key. ARGV: "c:<owner>", lease end (ms). Any other value than a claim means processed.
_CLAIM = """
local held = redis.call('GET', KEYS[1])
if held and held ~= ARGV[1] then
  if string.sub(held, 1, 2) == 'c:' then return 'busy' end
  return 'done'
end
redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[2])
return 'claimed'
"""

_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS: heads, sequence. ARGV: prefix, then per item: id, sender key, payload, received µs, next µs.
_INBOX_PUT = """
for i = 2, #ARGV, 5 do
  local item = ARGV[1] .. 'inbox:item:' .. ARGV[i]
  if redis.call('EXISTS', item) == 0 then
    local sender = ARGV[1] .. 'inbox:sender:' .. ARGV[i + 1]
    redis.call('HSET', item, 'id', ARGV[i], 'sender', ARGV[i + 1], 'payload', ARGV[i + 2],
               'received_us', ARGV[i + 3], 'next_us', ARGV[i + 4], 'attempts', 0)
    redis.call('ZADD', sender, redis.call('INCR', KEYS[2]), ARGV[i])
    if redis.call('ZCARD', sender) == 1 then redis.call('ZADD', KEYS[1], ARGV[i + 4], ARGV[i + 1]) end
  end
end
return 1
"""

# KEYS: heads. ARGV: prefix, now µs, limit, lease end µs. Returns each claimed item's fields (HGETALL).
_INBOX_DUE = """
local items = {}
for _, sender in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, ARGV[3])) do
  local head = redis.call('ZRANGE', ARGV[1] .. 'inbox:sender:' .. sender, 0, 0)[1]
  if head then
    redis.call('ZADD', KEYS[1], ARGV[4], sender)
    redis.call('HSET', ARGV[1] .. 'inbox:item:' .. head, 'next_us', ARGV[4])
    table.insert(items, redis.call('HGETALL', ARGV[1] .. 'inbox:item:' .. head))
  else
    redis.call('ZREM', KEYS[1], sender)
  end
end
return items
"""

# KEYS: item, heads. ARGV: prefix, id.
_INBOX_DONE = """
local sender_key = redis.call('HGET', KEYS[1], 'sender')
if not sender_key then return 0 end
redis.call('DEL', KEYS[1])
local sender = ARGV[1] .. 'inbox:sender:' .. sender_key
redis.call('ZREM', sender, ARGV[2])
local head = redis.call('ZRANGE', sender, 0, 0)[1]
if head then
  redis.call('ZADD', KEYS[2], redis.call('HGET', ARGV[1] .. 'inbox:item:' .. head, 'next_us'), sender_key)
else
  redis.call('ZREM', KEYS[2], sender_key)
end
return 1
"""

# KEYS: item, heads, set-aside item, set-aside index. ARGV: prefix, id, set aside at µs. The item leaves its
# sender's line (as ``inbox_done``) and is kept under another key, indexed by when it was set aside.
_INBOX_SET_ASIDE = """
local sender_key = redis.call('HGET', KEYS[1], 'sender')
if not sender_key then return 0 end
redis.call('RENAME', KEYS[1], KEYS[3])
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[2])
local sender = ARGV[1] .. 'inbox:sender:' .. sender_key
redis.call('ZREM', sender, ARGV[2])
local head = redis.call('ZRANGE', sender, 0, 0)[1]
if head then
  redis.call('ZADD', KEYS[2], redis.call('HGET', ARGV[1] .. 'inbox:item:' .. head, 'next_us'), sender_key)
else
  redis.call('ZREM', KEYS[2], sender_key)
end
return 1
"""

# KEYS: item, heads. ARGV: prefix, id, next µs, attempts.
_INBOX_RETRY = """
local sender_key = redis.call('HGET', KEYS[1], 'sender')
if not sender_key then return 0 end
redis.call('HSET', KEYS[1], 'next_us', ARGV[3], 'attempts', ARGV[4])
if redis.call('ZRANGE', ARGV[1] .. 'inbox:sender:' .. sender_key, 0, 0)[1] == ARGV[2] then
  redis.call('ZADD', KEYS[2], ARGV[3], sender_key)
end
return 1
"""

SCRIPTS = {
    "active_conversation": _ACTIVE_CONVERSATION,
    "save_conversation": _SAVE_CONVERSATION,
    "append_entry": _APPEND_ENTRY,
    "set_delivery": _SET_DELIVERY,
    "enqueue": _ENQUEUE,
    "take_or_requeue": _TAKE_OR_REQUEUE,
    "remove_from_queue": _REMOVE_FROM_QUEUE,
    "update_listener": _UPDATE_LISTENER,
    "outbox_put": _OUTBOX_PUT,
    "outbox_due": _OUTBOX_DUE,
    "outbox_renew": _OUTBOX_RENEW,
    "outbox_set_aside": _OUTBOX_SET_ASIDE,
    "outbox_resolve": _OUTBOX_RESOLVE,
    "outbox_reschedule": _OUTBOX_RESCHEDULE,
    "cancel_timers": _CANCEL_TIMERS,
    "timer_done": _TIMER_DONE,
    "timer_postpone": _TIMER_POSTPONE,
    "claim": _CLAIM,
    "inbox_put": _INBOX_PUT,
    "inbox_due": _INBOX_DUE,
    "inbox_done": _INBOX_DONE,
    "inbox_retry": _INBOX_RETRY,
    "inbox_set_aside": _INBOX_SET_ASIDE,
    "unlock": _UNLOCK,
}
