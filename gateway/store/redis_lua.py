"""The Lua scripts of the Redis store: every read-then-write operation, each atomic inside Redis.

Every script touches the keys of ONE Redis Cluster hash slot (the layout and its hash tags: :mod:`gateway.store.
redis_keys`): its ``KEYS``, and keys it names from ``ARGV[1]``, a group's prefix holding the same hash tag (e.g.
``hg:{queue}:``). An operation that changes keys of two slots is two scripts, run in an order argued where the
store runs them (:mod:`gateway.store.redis`). Values that must sort or compare exactly (microseconds since the
epoch) travel as integers, never through ``cjson``, which would print large numbers in exponent form; ``cjson``
only carries the queue entries, whose values are text.
"""

from __future__ import annotations

INDEXED_FROM = 32  # a transcript of this many entries or more has its index (``_ENTRIES``)
UNREAD_MADE = "#"  # the member marking a set of replies awaiting a read receipt complete (``_UNREAD_MADE``)

# Fragments shared by several scripts (``local`` functions at the head of the script that uses them).

# A transcript is a list of its entries themselves, each "<id>\n<delivery code><provider id>\n<sealed data>" (the
# provider id as its digest since 2026-12-07, ``store.provider_digest``: "#" and 16 characters; whole before): the
# head changes (LSET), the data stays; entries are only ever added at its end. A transcript of ``INDEXED_FROM``
# entries or more has an index beside it (a hash, same slot: entry id -> its place in the list, and '#' ->
# how many entries it indexes), so that finding, adding or changing one entry costs the same at 40 entries and at
# 4,000 (before, every such script read the whole list); a shorter one is read whole (fewer than ``INDEXED_FROM``
# entries: a bounded cost, and no index's bytes for the many short conversations). The list is the truth, the index
# a cache made again from it whenever it is not in step (its count differs from the list's length, or a place
# names another entry: a store of an earlier layout, an index expired before its list). Each helper takes both keys.
# Beside them, the entries awaiting a read receipt (``redis_keys.transcript_unread``): a reply joins when its outbox
# item is put (``awaits_read``, a Messenger reply's: the only channel whose read receipts are watermarks; scored by
# the entry's time: the item's creation, one ``now`` with the entry; then by the provider's answer's time once its
# send is recorded, ``answered_by``), and leaves once read or failed
# (``set_delivery``), so that a watermark's receipt reads only those (``_MARK_UNTIL``), once the set is marked
# made (``UNREAD_MADE``: a conversation begun before the set existed has its earlier replies added first, from its
# transcript, once: ``RedisStore.mark_until``).
_ENTRIES = (
    f"local INDEXED_FROM = {INDEXED_FROM}\nlocal UNREAD_MADE = '{UNREAD_MADE}'\n"
    + """
local function id_of(v)
  return string.sub(v, 1, string.find(v, '\\n', 1, true) - 1)
end
local function reindex(list, index, n)
  redis.call('DEL', index)
  local fields = {'#', n}
  for i, v in ipairs(redis.call('LRANGE', list, 0, -1)) do
    fields[#fields + 1] = id_of(v)
    fields[#fields + 1] = i - 1
    if #fields >= 1000 then
      redis.call('HSET', index, unpack(fields))
      fields = {}
    end
  end
  if #fields > 0 then redis.call('HSET', index, unpack(fields)) end
  local ttl = redis.call('PTTL', list)
  if ttl > 0 then redis.call('PEXPIRE', index, ttl) end
end
local function indexed(list, index, n)
  if n < INDEXED_FROM then return false end
  if redis.call('HGET', index, '#') ~= tostring(n) then reindex(list, index, n) end
  return true
end
local function find_entry(list, index, id)
  local prefix = id .. '\\n'
  local n = redis.call('LLEN', list)
  if indexed(list, index, n) then
    local at = redis.call('HGET', index, id)
    local v = at and redis.call('LINDEX', list, at)
    if at and not (v and string.sub(v, 1, #prefix) == prefix) then
      reindex(list, index, n)
      at = redis.call('HGET', index, id)
      v = at and redis.call('LINDEX', list, at)
    end
    if not at then return nil, nil end
    return tonumber(at), v
  end
  local entries = redis.call('LRANGE', list, 0, -1)
  for i = #entries, 1, -1 do
    if string.sub(entries[i], 1, #prefix) == prefix then return i - 1, entries[i] end
  end
  return nil, nil
end
local function push_entry(list, index, id, value)
  local n = redis.call('RPUSH', list, value)
  if n < INDEXED_FROM then return end
  if redis.call('HGET', index, '#') == tostring(n - 1) then
    redis.call('HSET', index, id, n - 1, '#', n)
  else
    reindex(list, index, n)
  end
end
local function set_delivery(list, index, unread, id, code, pmid)
  local at, v = find_entry(list, index, id)
  if not at then return 0 end
  local nl = string.find(v, '\\n', #id + 2, true)
  if pmid == '' then pmid = string.sub(v, #id + 3, nl - 1) end
  redis.call('LSET', list, at, id .. '\\n' .. code .. pmid .. string.sub(v, nl))
  if code == 'r' or code == 'f' then redis.call('ZREM', unread, id) end
  return 1
end
local function part_id(token)
  if string.sub(token, -2, -2) == '~' then return string.sub(token, 1, -3), string.sub(token, -1) end
  return token, 's'
end
local function part_ids(pmid)
  if not string.find(pmid, ' ', 1, true) then return pmid end
  local ids = {}
  for token in string.gmatch(pmid, '[^ ]+') do ids[#ids + 1] = part_id(token) end
  return table.concat(ids, ' ')
end
local function awaits_read(list, unread, id, at_us)
  redis.call('ZADD', unread, at_us, id)
  local ttl = redis.call('PTTL', list)
  if ttl > 0 then redis.call('PEXPIRE', unread, ttl) end
end
"""
)

# A risky message's line (inbox: its sender's; outbox: its conversation's) is urgent for its whole life: once due,
# handed out before every ordinary line, however often it was retried or rescheduled. Beside ``heads``, in its slot,
# ``urgent_to`` marks the line's last urgent id (its sequence number in the line: the ids before an urgent one go
# first with it) and ``urgent`` lists the line, scored as in ``heads`` when it was claimed or timed last. ``urge``
# marks an urgent id listed; ``retime`` times a line's head (an urgent one's entry with it: ``ZADD XX``, a command
# more a retry, a pause or a renewal); ``due_heads`` claims the urgent lines due first. A record or a done item
# that moves a line's head leaves its entry as it was (an ordinary send or processing costs no command more; the
# next head of an urgent line is due at once, 0 or a day early, first of the ordinary ones anyway). The claim brings
# an entry it meets in line with its line (``follow``): timed as in ``heads`` (its head leased, or timed by an
# instance of the version before), or dropped once the line's head is past its last urgent id or the line is gone.
# An ordinary claim costs one ZRANGEBYSCORE of ``urgent`` more, usually empty.
_URGENT = """
local function urgent_keys(heads)
  local prefix = string.sub(heads, 1, -6)  -- '…heads': its slot's prefix
  return prefix .. 'urgent', prefix .. 'urgent_to'
end
local function follow(heads, line, owner)  -- the line's heads score if it is still urgent, else nil
  local urgent, marks = urgent_keys(heads)
  local mark = redis.call('HGET', marks, owner)
  local head = mark and redis.call('ZRANGE', line, 0, 0, 'WITHSCORES') or {}
  local at = redis.call('ZSCORE', heads, owner)
  if head[2] and at and tonumber(head[2]) <= tonumber(mark) then
    redis.call('ZADD', urgent, at, owner)
    return tonumber(at)
  end
  redis.call('ZREM', urgent, owner)
  if mark and (not head[2] or tonumber(head[2]) > tonumber(mark)) then redis.call('HDEL', marks, owner) end
  return nil
end
local function urge(heads, line, owner, id)
  local _, marks = urgent_keys(heads)
  local seq = redis.call('ZSCORE', line, id)
  if seq and tonumber(seq) > tonumber(redis.call('HGET', marks, owner) or '-1') then
    redis.call('HSET', marks, owner, seq)
  end
  follow(heads, line, owner)
end
local function retime(heads, owner, at)
  redis.call('ZADD', heads, at, owner)
  redis.call('ZADD', (urgent_keys(heads)), 'XX', at, owner)
end
"""

# A sender's (inbox) or a conversation's (outbox) line of pending ids changed: its head's due time heads ``heads``.
# ``items`` prefixes an id to name its item hash (same slot); with items = false the head is due at ``at`` if
# given (the outbox's caller holds that item under a lease ending then: the rest of its run), else at once (0),
# and the outbox's ``due`` reads the item's own time (the items live in other slots).
_REHEAD = """
local function rehead(heads, line, owner, items, at)
  local head = redis.call('ZRANGE', line, 0, 0)[1]
  if not head then
    redis.call('ZREM', heads, owner)
  elseif items then
    redis.call('ZADD', heads, redis.call('HGET', items .. head, 'next_us') or '0', owner)
  else
    redis.call('ZADD', heads, at or 0, owner)
  end
end
"""

# A line of pending ids (a conversation's outbox items, a sender's inbox items) in put order, and ``heads``: the
# line's owner scored by when its head is due. ``join`` lists an id (the owner joins the heads with the line's first
# id); ``due_heads`` claims the due owners for a lease (their score becomes its end) and gives {owner, head id, the
# next ids}: the line's first ``run`` ids.
_LINES = (
    _URGENT
    + """
local function join(line, seq, heads, id, owner, due)
  redis.call('ZADD', line, redis.call('INCR', seq), id)
  if redis.call('ZCARD', line) == 1 then redis.call('ZADD', heads, due, owner) end
end
local function due_heads(heads, lines, now, limit, lease_end, run)
  local found = {}
  local function claim(owner)
    local ids = redis.call('ZRANGE', lines .. owner, 0, run - 1)
    if ids[1] then
      redis.call('ZADD', heads, lease_end, owner)
      table.insert(found, {owner, unpack(ids)})
      return true
    end
    redis.call('ZREM', heads, owner)
    return false
  end
  -- the urgent lines due first, their ``heads`` score due too (``follow``: an entry out of step is timed as its
  -- line, or dropped)
  local urgent = urgent_keys(heads)
  for _, owner in ipairs(redis.call('ZRANGEBYSCORE', urgent, '-inf', now, 'LIMIT', 0, limit)) do
    local at = follow(heads, lines .. owner, owner)
    if at and at <= tonumber(now) and claim(owner) then redis.call('ZADD', urgent, lease_end, owner) end
  end
  if #found < tonumber(limit) then  -- then the ordinary ones (an urgent line claimed above is leased: not again)
    for _, owner in ipairs(redis.call('ZRANGEBYSCORE', heads, '-inf', now, 'LIMIT', 0, tonumber(limit) - #found)) do
      claim(owner)
    end
  end
  return found
end
"""
)

# The fencing token: an outbox item held under a lease whose end (µs) ``token`` is, or '' (unfenced).
_HELD = """
local function held(item, token)
  local now = redis.call('HMGET', item, 'status', 'next_us')
  return now[1] == 'pending' and (token == '' or now[2] == token)
end
"""

# The conversation lock's fence (since 2026-12-07): a write of the conversation's slot made under its lock
# (``RedisStore``'s ``_Fence``) is its script with this head, the lock's key last in KEYS and its holder's token last
# in ARGV (taken off before the script's own body reads them): nothing is written, and FENCED answered, when the lock
# no longer holds that token (its lease lapsed while the writes were on their way; another instance may hold it and
# have moved the conversation on). Until then the record, entries and items of a late commit landed on top.
# Since 2026-12-07 the head also reads how many fenced writes the holder made before this one under this lock (before
# the lock's key in KEYS, ``redis_keys.lock_writes``: "<token>:<n>", absent or another token's for none; before the
# token in ARGV, the holder's count) and refuses one that does not follow them all: a failover whose new primary got
# the lock but not the holder's writes sent to the old one after it (a planned one's old primary writable for a while)
# took the next commit, its record and its processed mark, for a whole one: the message marked processed, its entry
# in no transcript (``tests/store/test_redis_sentinel.py``). The count lives as the lock does (its lease, renewed with
# it: ``lock_renew``) and goes with its release (``unlock``, ``put_conversation``'s). Since 2026-12-07 (later that day)
# the count is compared whole ("<token>:<made>") and, once it exists, written with its TTL kept (``KEEPTTL``: set
# from the lock's at the holder's first write, renewed with it since): until then each fenced write took the count
# apart (two ``string.sub``) and read the lock's ``PTTL`` again, 4.8 -> 3.6 us of Redis's CPU a fenced script
# (about four a message; bench/README.md, "Sixtieth session"). The same writes pass and the same are refused.
FENCED = "fenced"
_FENCE = f"""
local fence_key, fence_token = table.remove(KEYS), table.remove(ARGV)
local fence_writes, fence_made = table.remove(KEYS), table.remove(ARGV)
if redis.call('GET', fence_key) ~= fence_token then return '{FENCED}' end
local fence_prefix = fence_token .. ':'
local fence_was = redis.call('GET', fence_writes)
if fence_was == fence_prefix .. fence_made then
  redis.call('SET', fence_writes, fence_prefix .. (tonumber(fence_made) + 1), 'KEEPTTL')
elseif fence_made == '0' and (not fence_was or string.sub(fence_was, 1, #fence_prefix) ~= fence_prefix) then
  redis.call('SET', fence_writes, fence_prefix .. '1', 'PX', math.max(1, redis.call('PTTL', fence_key)))
else return '{FENCED}' end
"""

# Conversations. KEYS: the record, the processed marks, and (a record whose save is its batch's last step of the
# slot: ``RedisStore.locked_batch``) the conversation's lock and its count of fenced writes (since 2026-12-07:
# deleted with it). ARGV: record, '' or the processed inbound key's digest (``ids.seen_digest``), its expiry (ms),
# now (ms), record TTL in s (0: none, a fresh record not claimed by its sender yet), and with the lock its holder's
# token: the lock released after the record, as ``unlock`` does.
_PUT_CONVERSATION = """
if ARGV[5] ~= '0' then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[5])
else
  redis.call('SET', KEYS[1], ARGV[1])
end
if ARGV[2] ~= '' then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[4])
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
  redis.call('PEXPIREAT', KEYS[2], redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')[2])
end
if KEYS[3] and redis.call('GET', KEYS[3]) == ARGV[6] then redis.call('DEL', KEYS[3], KEYS[4] or KEYS[3]) end
return 1
"""

# KEYS: the creation index, the flagged index (``redis_keys.FLAGGED``), the told index (``redis_keys.TOLD``). ARGV:
# prefix "hg:{index}:", id, created µs, status to add ('' for none), its score among the open conversations with a
# flag (µs; '' leaves it as it is, '-' takes it out), its score among the waiting ones told the line is closed (the
# same), then the statuses to leave. Until 2026-12-07 there was no told index (ARGV[6] was the first status to leave).
# A rank given moves a member up only (``GT``: each is the time of the latest flag, the latest closed line told, so a
# save never lowers it): the join is sent before the record, and a commit whose record the lock's fence refused
# (``RedisStore``'s ``_Fence``) put back the older rank it had read over the next holder's newer one until
# 2026-12-07 (a plain ``ZADD``): the latest flagged conversation went down the console's list, below older ones.
_INDEX_CONVERSATION = """
if ARGV[4] ~= '' then
  redis.call('SADD', ARGV[1] .. 'status:' .. ARGV[4], ARGV[2])
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
end
for k = 2, 3 do
  if ARGV[k + 3] == '-' then
    redis.call('ZREM', KEYS[k], ARGV[2])
  elseif ARGV[k + 3] ~= '' then
    redis.call('ZADD', KEYS[k], 'GT', ARGV[k + 3], ARGV[2])
  end
end
for i = 7, #ARGV do redis.call('SREM', ARGV[1] .. 'status:' .. ARGV[i], ARGV[2]) end
return 1
"""

# KEYS: an index of one listener's or one young person's conversations (``redis_keys.ended``, ``person``). ARGV: the
# conversation id, its score (µs), how far back from the latest score entries are kept (µs), the key's TTL (seconds).
_INDEX_OF = """
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
local latest = redis.call('ZREVRANGE', KEYS[1], 0, 0, 'WITHSCORES')
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('(%.0f', tonumber(latest[2]) - tonumber(ARGV[3])))
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
"""

# KEYS: the index of one young person's conversations (``redis_keys.person``). ARGV: the conversation id, its creation
# (µs). Neither trimmed nor expiring (until 2026-12-06 it was kept as ``ended`` is, by ``index_of``): an erasure reads
# it, and a conversation names its person until the purge strips the identity (``closed_days``, maybe past 31 days),
# which takes it out, as the erasure does. ``PERSIST``: a key the 31-day index left with a TTL keeps no expiry.
_PERSON_OF = """
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('PERSIST', KEYS[1])
return 1
"""

# KEYS: a sender's active key. ARGV: the id it should hold, the id it is expected to hold ('' for none or this id).
# Returns 1 when it holds ``ARGV[1]`` now, else the id it holds (the caller looks at that conversation).
_CLAIM_ACTIVE = """
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] then return 1 end
if current and current ~= ARGV[2] then return current end
redis.call('SET', KEYS[1], ARGV[1])
return 1
"""

# KEYS: the key. ARGV: its value. Deleted only while it still holds that value.
_DELETE_IF = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS: the key. ARGV: the value read, the new value, seconds kept. Replaced only while it still holds the value read.
_REPLACE_IF = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
"""

# Transcripts. KEYS: the conversation's transcript, its index. ARGV: entry id, the entry ("<id>\n<head>\n<data>").
# Written once, however often the step runs (a retried processing writes the same ids).
_PUT_ENTRY = (
    _ENTRIES
    + """
if find_entry(KEYS[1], KEYS[2], ARGV[1]) then return 0 end
push_entry(KEYS[1], KEYS[2], ARGV[1], ARGV[2])
return 1
"""
)

# KEYS: the conversation's transcript, its index. ARGV: entry id. The entry, or false.
_GET_ENTRY = (
    _ENTRIES
    + """
local _, v = find_entry(KEYS[1], KEYS[2], ARGV[1])
return v or false
"""
)

# KEYS: the conversation's transcript, its index. ARGV: entry ids. Those the transcript holds (no entry's data read
# out of Redis: the index's fields, or the heads of a short list's entries).
_ENTRIES_WRITTEN = (
    _ENTRIES
    + """
local found = {}
if indexed(KEYS[1], KEYS[2], redis.call('LLEN', KEYS[1])) then
  for _, id in ipairs(ARGV) do
    if find_entry(KEYS[1], KEYS[2], id) then found[#found + 1] = id end
  end
  return found
end
local wanted = {}
for _, id in ipairs(ARGV) do wanted[id] = true end
for _, v in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  local id = id_of(v)
  if wanted[id] then
    found[#found + 1] = id
    wanted[id] = nil
  end
end
return found
"""
)

# KEYS: the conversation's transcript. ARGV: a provider id, its digest. The entry whose head holds either (the digest;
# the id, written before 2026-12-07), or false: read from the end ``INDEXED_FROM`` entries at a time (a receipt
# concerns a recent message: it costs the distance from the end).
_ENTRY_BY_PROVIDER = (
    _ENTRIES
    + """
local stop = redis.call('LLEN', KEYS[1]) - 1
while stop >= 0 do
  local start = math.max(0, stop - INDEXED_FROM + 1)
  local entries = redis.call('LRANGE', KEYS[1], start, stop)
  for i = #entries, 1, -1 do
    local v = entries[i]
    local nl = string.find(v, '\\n', 1, true)
    local pmid = string.sub(v, nl + 2, string.find(v, '\\n', nl + 1, true) - 1)
    if pmid == ARGV[2] or pmid == ARGV[1] then return v end
    if string.find(pmid, ' ', 1, true) then  -- a reply in parts: "<id>[~<code>] <id>[~<code>] …"
      for token in string.gmatch(pmid, '[^ ]+') do
        local pid = part_id(token)
        if pid == ARGV[2] or pid == ARGV[1] then return v end
      end
    end
  end
  stop = start - 1
end
return false
"""
)

# KEYS: the conversation's transcript, its index, its unread set. ARGV: entry id, delivery code, provider id or ''.
_SET_DELIVERY = (
    _ENTRIES
    + """
return set_delivery(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3])
"""
)

# KEYS: as ``_SET_DELIVERY``'s. ARGV: entry id, delivery code. A receipt's status: taken only when further than the
# entry's (pending < sent < delivered < read) or a failure ('f'); 1 when taken, 0 otherwise (as far already, gone).
_ADVANCE_DELIVERY = (
    _ENTRIES
    + """
local rank = {p = 0, s = 1, d = 2, r = 3, f = 4}
local at, v = find_entry(KEYS[1], KEYS[2], ARGV[1])
if not at then return 0 end
local code = string.sub(v, #ARGV[1] + 2, #ARGV[1] + 2)
if ARGV[2] ~= 'f' and rank[ARGV[2]] <= (rank[code] or 0) then return 0 end
return set_delivery(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], '')
"""
)

# KEYS: as ``_SET_DELIVERY``'s. ARGV: entry id, delivery code, the provider id the receipt names, its digest (the
# part found by either: ``_ENTRY_BY_PROVIDER``; each part's kept as it was written). An entry of one
# provider id: as ``_ADVANCE_DELIVERY``. A reply sent in parts (its head's ids "<id>[~<code>] <id>[~<code>] …", a part
# without a code only sent): that part's code goes forward (a failure final), and the entry shows the worst part's
# ('f' if one failed, else the least far), never back from what it showed. The code shown when it changed, else 0.
_ADVANCE_PART = (
    _ENTRIES
    + """
local rank = {p = 0, s = 1, d = 2, r = 3, f = 4}
local at, v = find_entry(KEYS[1], KEYS[2], ARGV[1])
if not at then return 0 end
local code = string.sub(v, #ARGV[1] + 2, #ARGV[1] + 2)
local pmid = string.sub(v, #ARGV[1] + 3, string.find(v, '\\n', #ARGV[1] + 2, true) - 1)
if not string.find(pmid, ' ', 1, true) then
  if ARGV[2] ~= 'f' and rank[ARGV[2]] <= (rank[code] or 0) then return 0 end
  set_delivery(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], '')
  return ARGV[2]
end
if (rank[ARGV[2]] or 0) < 1 then return 0 end
local tokens, found, worst = {}, false, 'f'
local failed = false
for token in string.gmatch(pmid, '[^ ]+') do
  local pid, c = part_id(token)
  if (rank[c] or 0) < 1 then c = 's' end
  if pid == ARGV[4] or pid == ARGV[3] then
    found = true
    if c ~= 'f' and rank[ARGV[2]] > rank[c] then c = ARGV[2] end
  end
  if c == 'f' then failed = true elseif rank[c] < rank[worst] then worst = c end
  tokens[#tokens + 1] = c == 's' and pid or (pid .. '~' .. c)
end
if not found then return 0 end
if failed then worst = 'f' end
local shown = code
if code ~= 'f' and (worst == 'f' or rank[worst] > (rank[code] or 0)) then shown = worst end
set_delivery(KEYS[1], KEYS[2], KEYS[3], ARGV[1], shown, table.concat(tokens, ' '))
if shown == code then return 0 end
return shown
"""
)

# A watermark that meets a reply still pending (accepted by Meta, its record not written yet: a record retried through
# a Redis outage) is kept on the conversation (``redis_keys.kept_watermark``: code -> the newest such watermark, µs,
# never moved back, with the kept receipts' TTL), and the send's record applies it (``watermarked``) when the outbox
# got Meta's answer at or before it: Meta accepted the reply before answering, so a watermark after the answer
# certainly covers it; one before the answer may not (the reply may have been accepted after the read: a long outage
# before the send) and is not applied. Only to a reply awaiting a read receipt (in its unread set), forward only (a
# read over sent or delivered, a delivery over sent). The record's cost: one HMGET of a key nearly always absent.
# ``answered_by``: the record scores its reply in the unread set by the answer's time (``ZADD XX``: nothing for a reply
# awaiting no read receipt), so that a watermark after the record marks it only from then on, for the same reason;
# before 2026-12-06 it kept the entry's time, and a watermark between the two (a send tried again through a long
# outage, the watermark delivered late) showed read a reply Meta may have accepted after the read. One command more.
_WATERMARKS = """
local function keep_watermark(kept, code, until_us, ttl_ms)
  local old = redis.call('HGET', kept, code)
  if not old or tonumber(old) < tonumber(until_us) then redis.call('HSET', kept, code, until_us) end
  redis.call('PEXPIRE', kept, ttl_ms)
end
local function watermarked(kept, unread, id, code, answered_us)
  if not answered_us or answered_us == '' or (code ~= 's' and code ~= 'd') then return code end
  local w = redis.call('HMGET', kept, 'r', 'd')
  if not w[1] and not w[2] then return code end
  if not redis.call('ZSCORE', unread, id) then return code end
  local at = tonumber(answered_us)
  if w[1] and at <= tonumber(w[1]) then return 'r' end
  if code == 's' and w[2] and at <= tonumber(w[2]) then return 'd' end
  return code
end
local function answered_by(unread, id, code, answered_us)
  if answered_us and answered_us ~= '' and (code == 's' or code == 'd') then
    redis.call('ZADD', unread, 'XX', answered_us, id)
  end
end
"""

# KEYS: the conversation's transcript, its index, its unread set, its kept watermark. ARGV: a watermark (µs), the
# delivery's code ('d' or 'r'), the kept watermark's TTL (ms). Every entry sent (or delivered, for 'r') at or before
# the watermark takes the code; the ids changed, in the transcript's order. Reads only the unread set's entries up
# to the watermark (each found by the index): a receipt costs the entries awaiting it, not the transcript. Once
# read, an entry leaves the set: the same receipt again changes nothing. An entry still pending (its item not
# recorded sent yet) is left as it is, and the watermark kept for its record (``_WATERMARKS``). Nothing (nil) when
# the set is not marked made (``UNREAD_MADE``): the caller makes it (``_UNREAD_MADE``), then calls again.
_MARK_UNTIL = (
    _ENTRIES
    + _WATERMARKS
    + """
if not redis.call('ZSCORE', KEYS[3], UNREAD_MADE) then return nil end
local changed, pending = {}, false
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', ARGV[1])) do
  local at, v = find_entry(KEYS[1], KEYS[2], id)
  local code = v and string.sub(v, #id + 2, #id + 2)
  if code == 's' or (code == 'd' and ARGV[2] == 'r') then
    set_delivery(KEYS[1], KEYS[2], KEYS[3], id, ARGV[2], '')
    changed[#changed + 1] = {at, id}
  elseif code == 'p' then
    pending = true
  elseif code ~= 'd' then
    redis.call('ZREM', KEYS[3], id)  -- gone, read or failed: awaits nothing
  end
end
if pending then keep_watermark(KEYS[4], ARGV[2], ARGV[1], ARGV[3]) end
table.sort(changed, function(a, b) return a[1] < b[1] end)
local ids = {}
for i, c in ipairs(changed) do ids[i] = c[2] end
return ids
"""
)

# KEYS: the conversation's transcript, its index, its unread set. ARGV: '1' when the caller read the transcript
# (a conversation created before the set existed), else '0'; then per reply awaiting a read receipt: its id, its
# time (µs). The replies join the set (one already there keeps its score) and the set is marked made
# (``UNREAD_MADE``, scored +inf: no watermark reaches it), with the transcript's TTL: from then on a watermark reads
# only the set. Not marked when there is nothing to mark yet and the transcript was not read (a conversation of a
# channel without watermarks, or none of whose replies awaits one: no key for nothing), nor without a transcript.
_UNREAD_MADE = (
    _ENTRIES
    + """
if redis.call('LLEN', KEYS[1]) == 0 then return 0 end
for i = 2, #ARGV, 2 do redis.call('ZADD', KEYS[3], 'NX', ARGV[i + 1], ARGV[i]) end
if ARGV[1] ~= '1' and redis.call('ZCARD', KEYS[3]) == 0 then return 0 end
redis.call('ZADD', KEYS[3], '+inf', UNREAD_MADE)
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then redis.call('PEXPIRE', KEYS[3], ttl) end
return 1
"""
)

# KEYS: the conversation's transcript, its index. ARGV: entry id, its sealed data as read, the data replacing it.
# Replaced only while it still holds the data read (a reseal may have rewritten it); its head stays (a receipt
# meanwhile counts).
_SET_ENTRY_DATA = (
    _ENTRIES
    + """
local at, v = find_entry(KEYS[1], KEYS[2], ARGV[1])
if not at then return 0 end
local nl = string.find(v, '\\n', #ARGV[1] + 2, true)
if string.sub(v, nl + 1) ~= ARGV[2] then return 0 end
redis.call('LSET', KEYS[1], at, string.sub(v, 1, nl) .. ARGV[3])
return 1
"""
)

# A claim naming a conversation (``c:<lease end>:<conversation>:<owner>``, see ``_CLAIM``) is listed in that
# conversation's index ``<prefix>n:<conversation>`` (``K.claims_of``, slot {seen}, ARGV gives the prefix), whose TTL
# is the claim's (set together): an erasure or purge reads the index, never a SCAN of the keyspace. It leaves the
# index when its claim goes (``seen_mark``, ``release``) or names another: the index exists while such a claim does.
_CLAIMS = """
local function named(value)  -- the conversation a claim's value names, or nil
  return value and string.match(value, '^c:%d+:([^:]+):') or nil
end
local function reindex(prefix, key, before, after, ttl)
  local was, now = named(before), named(after)
  if was and was ~= now then redis.call('SREM', prefix .. 'n:' .. was, key) end
  if now then
    redis.call('SADD', prefix .. 'n:' .. now, key)
    redis.call('EXPIRE', prefix .. 'n:' .. now, ttl)
  end
end
"""

# De-duplication: every key under "hg:{seen}:" (ARGV[6]). KEYS: the inbound id's claim. ARGV: owner, now (ms),
# lease end (ms), the conversation it is processed in ('' when not known yet), seconds the claim is kept, prefix,
# the id's shard, today (days since the epoch), days a processed mark may be kept, the inbound id's digest
# (``ids.seen_digest``), '1' to take over another owner's claim still within its lease (``take_over``, a caller
# under the lock every claim of the id is made under: treated as lapsed; since 2026-12-07) or ''. 'done' when a
# processed mark holds the digest (the hashes "<day>:<shard>" of the days its mark may expire on); else the claim:
# "c:<lease end ms>:<conversation>:<owner>" (one that names its conversation outlives its lease: lapsed, it may have
# been saved there, see ``RedisStore.claim``; one that names none expires with its lease: its key holds the
# provider's message id, which nothing else could find to erase).
# The owner's own claim still held (a renewal: under the lock, then every third of the lease) skips the days' scan
# (33 HEXISTS, twice a message): every processed mark is written by a script that deletes the claim with it
# (``seen_mark``), and a claim is only ever set after that scan came up empty or by its owner's renewal of it, so
# while the owner's claim is there no mark can hold the id.
_CLAIM = (
    _CLAIMS
    + """
local v = redis.call('GET', KEYS[1])
local lease, was, owner
if v and string.sub(v, 1, 2) == 'c:' then
  lease, was, owner = string.match(v, '^c:(%d+):([^:]*):(.*)$')
  if not lease then lease, was, owner = ARGV[3], '', string.sub(v, 3) end
end
if owner ~= ARGV[1] then
  for day = tonumber(ARGV[8]), tonumber(ARGV[8]) + tonumber(ARGV[9]) do
    if redis.call('HEXISTS', ARGV[6] .. day .. ':' .. ARGV[7], ARGV[10]) == 1 then return 'done' end
  end
end
local conv = ARGV[4]
if v then
  if string.sub(v, 1, 2) ~= 'c:' then return 'done' end
  if owner ~= ARGV[1] then
    if tonumber(lease) > tonumber(ARGV[2]) and ARGV[11] ~= '1' then return 'busy' end
    if was ~= '' then return 'check:' .. was .. ':' .. v end
  end
  if conv == '' then conv = was end
end
local claim = 'c:' .. ARGV[3] .. ':' .. conv .. ':' .. ARGV[1]
if conv == '' then  -- names no conversation: nothing to decide once lapsed, so it goes with its lease
  redis.call('SET', KEYS[1], claim, 'PX', math.max(1, tonumber(ARGV[3]) - tonumber(ARGV[2])))
else
  redis.call('SET', KEYS[1], claim, 'EX', ARGV[5])
end
reindex(ARGV[6], KEYS[1], v, claim, ARGV[5])
return 'claimed'
"""
)

# KEYS: the claim. ARGV: the value read, the new value (naming a conversation), seconds kept, the claims' prefix.
# Replaced (and listed in the index of the conversation it names) only while it still holds the value read.
_CLAIM_REPLACE = (
    _CLAIMS
    + """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
reindex(ARGV[4], KEYS[1], ARGV[1], ARGV[2], ARGV[3])
return 1
"""
)

# KEYS: the index of the claims naming a conversation (``K.claims_of``). ARGV: the conversation. Every claim it lists
# that still names the conversation deleted, then the index (an erasure or purge: ``redis_retention.forget``, under
# the conversation's lock; a live claim's owner claims again once it has the lock).
_CLAIMS_FORGET = (
    _CLAIMS
    + """
for _, name in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if named(redis.call('GET', name)) == ARGV[1] then redis.call('DEL', name) end
end
return redis.call('DEL', KEYS[1])
"""
)

# KEYS: the inbound id's claim, the processed marks of the day its mark expires. ARGV: the id's digest, that day's
# end (s), the claim's value it must still hold ('' for any), the claims' prefix, and optionally the time (ms, on
# Redis's clock) by which it must run ('' or none: any): after the record's save in a batch fenced by the lock, the
# time by which that lock's lease was surely still held, so that a mark runs only after a record that was written
# (another slot: it cannot read the lock; since 2026-12-07). The mark, then the claim goes (and its place in its
# conversation's index); 0 when refused.
_SEEN_MARK = (
    _CLAIMS
    + """
if ARGV[5] and ARGV[5] ~= '' then
  local now = redis.call('TIME')
  if tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) > tonumber(ARGV[5]) then return 0 end
end
local v = redis.call('GET', KEYS[1])
if ARGV[3] ~= '' and v ~= ARGV[3] then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], '1')
redis.call('EXPIREAT', KEYS[2], ARGV[2])
reindex(ARGV[4], KEYS[1], v, nil, 0)
redis.call('DEL', KEYS[1])
return 1
"""
)

# A processed mark taken back (since 2026-12-07): ``seen_mark`` ran with a deadline (``RedisStore``'s ``_Fence``) in a
# commit whose conversation's writes were refused (fenced: the lock's key lost before its lease ended, a failover to a
# replica it had not reached). KEYS: the inbound id's claim, the processed marks of the day the mark expires on. ARGV:
# the id's digest, the conversation the commit was made in, seconds the claim is kept, the claims' prefix. The mark
# deleted the claim with it, so a claim there now was set after the mark went (an erasure's ``forget_seen``): left,
# 0. Else the mark goes and a lapsed claim naming the conversation and no owner takes its place: the next delivery's
# ``claim`` answers 'check:', the conversation's processed marks (its record's slot) decide: a record that was written
# by another holder meanwhile (the claim lost with the lock) says DONE and the mark is repaired; none, the message is
# claimed and processed again (not lost, as it was before: marked, recorded nowhere). Made again safely (``0``).
_SEEN_UNMARK = (
    _CLAIMS
    + """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
local claim = 'c:0:' .. ARGV[2] .. ':'
redis.call('SET', KEYS[1], claim, 'EX', ARGV[3])
reindex(ARGV[4], KEYS[1], nil, claim, ARGV[3])
return 1
"""
)

# KEYS: the inbound id's key. ARGV: owner, the claims' prefix.
_RELEASE = (
    _CLAIMS
    + """
local v = redis.call('GET', KEYS[1])
if v and (string.match(v, '^c:%d+:[^:]*:(.*)$') or string.sub(v, 3)) == ARGV[1] and string.sub(v, 1, 2) == 'c:' then
  reindex(ARGV[2], KEYS[1], v, nil, 0)
  return redis.call('DEL', KEYS[1])
end
return 0
"""
)

# ``{queue}:holding``, listener -> how many entries they have taken (the size of ``held:<listener>``, absent at 0),
# kept by each script below that joins or leaves a ``held:<listener>`` (since 2026-12-07: the console's count of who
# holds what, no held entry read).
_HOLDING = """
local function holding(prefix, listener)
  local n = redis.call('SCARD', prefix .. 'held:' .. listener)
  if n > 0 then redis.call('ZADD', prefix .. 'holding', n, listener)
  else redis.call('ZREM', prefix .. 'holding', listener) end
end
"""

# KEYS: entries, ``holding``, its mark (``holding:made``). ARGV: prefix. The index made from the entries, once per
# store (a store written before 2026-12-07): each holder's count is its set's size, as the scripts keep it.
_MAKE_HOLDING = (
    _HOLDING
    + """
if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
local seen = {}
for _, raw in ipairs(redis.call('HVALS', KEYS[1])) do
  local e = cjson.decode(raw)
  if e['taken_by'] ~= cjson.null and not seen[e['taken_by']] then
    seen[e['taken_by']] = true
    holding(ARGV[1], e['taken_by'])
  end
end
redis.call('SET', KEYS[3], '1')
return 1
"""
)

# The waiting queue: every key under "hg:{queue}:" (ARGV[1]). KEYS: entries, sequence, queue names.
# ARGV: prefix, id, queue, rank, arrival µs (20 digits), entry JSON, '1' to refuse (0) a conversation listed in
# ``leaving`` (a transfer: its ending under way or cut short; no round trip more than the step), and (since 2026-12-08)
# '1' to refuse (-1, nothing changed) an entry held by another listener than ARGV[9] ('': none expected, the
# conversation waiting or without an entry): until then a transfer's step that reached Redis after its lock lapsed (a
# stalled instance) replaced the next holder's entry by a waiting one (``RedisStore.enqueue``).
_ENQUEUE = (
    _HOLDING
    + """
if ARGV[7] == '1' and redis.call('HEXISTS', ARGV[1] .. 'leaving', ARGV[2]) == 1 then return 0 end
local old = redis.call('HGET', KEYS[1], ARGV[2])
if old then
  local e = cjson.decode(old)
  if ARGV[8] == '1' and e['taken_by'] ~= cjson.null and e['taken_by'] ~= ARGV[9] then return -1 end
  redis.call('ZREM', ARGV[1] .. 'waiting:' .. e['queue'], e['member'])
  if e['taken_by'] ~= cjson.null then
    redis.call('SREM', ARGV[1] .. 'held:' .. e['taken_by'], ARGV[2])
    holding(ARGV[1], e['taken_by'])
  end
end
local seq = redis.call('INCR', KEYS[2])
local member = ARGV[4] .. ':' .. ARGV[5] .. ':' .. string.format('%012d', seq) .. ':' .. ARGV[2]
local entry = cjson.decode(ARGV[6])
entry['member'] = member
redis.call('HSET', KEYS[1], ARGV[2], cjson.encode(entry))
redis.call('ZADD', ARGV[1] .. 'waiting:' .. ARGV[3], 0, member)
redis.call('SADD', KEYS[3], ARGV[3])
return 1
"""
)

# KEYS: entries. ARGV: prefix, id, listener ('' to hand back), taken at µs, takes older than this µs are dropped,
# '1' to refuse a hand back of a conversation listed in ``leaving`` (a take always is), and (since 2026-12-08) for a
# hand back the listener it hands back from ('' or absent: whoever holds it).
# Returns the entry, or false when the change is not allowed (a take of a conversation listed in ``leaving``, whose
# quick exit, "Terminer" or idle close is under way or cut short, is not; nor a listener's hand back, since rel31; nor
# a hand back of an entry another listener holds, since 2026-12-08: until then a hand-back's step that reached Redis
# after its lock lapsed (a stalled instance) un-took the next holder's entry, ``RedisStore.requeue``).
# A take is counted in ``takes:<queue>`` (scored by when) and the conversation joins ``held:<listener>``; a hand back
# leaves it, and lists its queue among the queues' names (``names``, which every reader of the line reads: since
# 2026-12-08; until then only ``_ENQUEUE`` did, and an entry handed back after that key was lost, evicted or deleted,
# waited unseen: ``tests/store/test_redis_queue_names.py``).
_TAKE_OR_REQUEUE = (
    _HOLDING
    + """
local raw = redis.call('HGET', KEYS[1], ARGV[2])
if not raw then return false end
local e = cjson.decode(raw)
local waiting = ARGV[1] .. 'waiting:' .. e['queue']
if ARGV[3] ~= '' then
  if e['taken_by'] ~= cjson.null then return false end
  if redis.call('HEXISTS', ARGV[1] .. 'leaving', ARGV[2]) == 1 then return false end
  redis.call('ZREM', waiting, e['member'])
  e['taken_by'] = ARGV[3]
  redis.call('SADD', ARGV[1] .. 'held:' .. ARGV[3], ARGV[2])
  holding(ARGV[1], ARGV[3])
  local takes = ARGV[1] .. 'takes:' .. e['queue']
  redis.call('ZADD', takes, ARGV[4], ARGV[2])
  redis.call('ZREMRANGEBYSCORE', takes, '-inf', '(' .. ARGV[5])
elseif ARGV[6] == '1' and redis.call('HEXISTS', ARGV[1] .. 'leaving', ARGV[2]) == 1 then
  return false
elseif e['taken_by'] ~= cjson.null then
  if ARGV[7] and ARGV[7] ~= '' and e['taken_by'] ~= ARGV[7] then return false end
  redis.call('ZADD', waiting, 0, e['member'])
  redis.call('SADD', ARGV[1] .. 'names', e['queue'])
  redis.call('SREM', ARGV[1] .. 'held:' .. e['taken_by'], ARGV[2])
  holding(ARGV[1], e['taken_by'])
  e['taken_by'] = cjson.null
end
raw = cjson.encode(e)
redis.call('HSET', KEYS[1], ARGV[2], raw)
return raw
"""
)

# KEYS: entries. ARGV: prefix, id, '1' to forget its takes too (erasure).
_REMOVE_FROM_QUEUE = (
    _HOLDING
    + """
local raw = redis.call('HGET', KEYS[1], ARGV[2])
if not raw then return 0 end
local e = cjson.decode(raw)
redis.call('ZREM', ARGV[1] .. 'waiting:' .. e['queue'], e['member'])
if e['taken_by'] ~= cjson.null then
  redis.call('SREM', ARGV[1] .. 'held:' .. e['taken_by'], ARGV[2])
  holding(ARGV[1], e['taken_by'])
end
if ARGV[3] == '1' then redis.call('ZREM', ARGV[1] .. 'takes:' .. e['queue'], ARGV[2]) end
redis.call('HDEL', KEYS[1], ARGV[2])
return 1
"""
)

# KEYS: entries, queue names. ARGV: prefix, id. A waiting entry listed where every reader of the line looks: its
# member in its queue's order (kept: its place), its queue among the names; how many of the two were missing (0: none,
# or no entry waiting). Since 2026-12-08 (``RedisStore.list_waiting``): until then an entry whose queue's order or
# names key was lost waited unseen for good.
_LIST_WAITING = """
local raw = redis.call('HGET', KEYS[1], ARGV[2])
if not raw then return 0 end
local e = cjson.decode(raw)
if e['taken_by'] ~= cjson.null then return 0 end
local ordered = redis.call('ZADD', ARGV[1] .. 'waiting:' .. e['queue'], 'NX', 0, e['member'])
return ordered + redis.call('SADD', KEYS[2], e['queue'])
"""

# KEYS: entries. ARGV: prefix, id. The entry's 0-based rank among its queue's waiting ones; false when it has no
# entry or is taken (not waiting).
_POSITION = """
local raw = redis.call('HGET', KEYS[1], ARGV[2])
if not raw then return false end
local e = cjson.decode(raw)
return redis.call('ZRANK', ARGV[1] .. 'waiting:' .. e['queue'], e['member'])
"""

# KEYS: the listeners[, the audit log]. ARGV: the name, the account[, its audit line, AUDIT_KEPT]. The account replaced
# if there is one, its audit line with it (one node only: two slots; ``RedisStore.update_listener``).
_UPDATE_LISTENER = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if KEYS[2] then
  redis.call('LPUSH', KEYS[2], ARGV[3])
  redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[4]) - 1)
end
return 1
"""

# KEYS: the line's key (``hg:audit-once:<key>``), the audit log. ARGV: the line, AUDIT_KEPT, how long the key is kept
# (ms). The line appended unless the key is set; the key set after it (one node only: two slots;
# ``RedisStore.audit_once``, since 2026-12-07). A script's writes before an error stay: until 2026-12-08 the key was
# set first, and a line refused after it (a log key of another type) left the key set, every retry answering
# "written" and the line lost.
_AUDIT_ONCE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('LPUSH', KEYS[2], ARGV[1])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[2]) - 1)
redis.call('SET', KEYS[1], '1', 'PX', ARGV[3])
return 1
"""

# A listener's console sessions (``redis_keys.sessions_index``), at a login: those ended by ARGV[4] dropped, the new
# one added, in one step (a session put at the same time is never dropped: it ends later); the index lasts as long as
# the last session it lists. KEYS: the index. ARGV: the session's key, its end (µs), its TTL (ms), the end (µs) at or
# before which a session is dropped.
_PUT_SESSION_INDEX = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[4])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[3]) then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
"""

# The outbox. An item lives beside its transcript entry (slot ``{<entry id>}``); the lines of pending ids and the
# heads under "hg:{outbox}:". Each operation is an item step, then a line step (the store runs them in order).

# The items of a conversation that neither its transcript nor its outbox line may lead to: an item without a
# transcript entry (a notice's, ``notice-<key>``), and every item kept resolved, with a TTL (failed: 7 days; what is
# left of a sent one: an hour), which may outlive its transcript. Listed by id in ``K.items_listed`` (the
# conversation's slot), whose TTL is the longest of theirs (none while one has none); the ids of items gone are
# dropped at each listing. An erasure or purge reads it, never a SCAN of the keyspace (``redis_retention``).
_LISTED = """
local function relist(index, item, id)
  local prefix = string.sub(item, 1, #item - #id)
  redis.call('SADD', index, id)
  local most = 0
  for _, m in ipairs(redis.call('SMEMBERS', index)) do
    local ttl = redis.call('PTTL', prefix .. m)
    if ttl == -2 then redis.call('SREM', index, m)
    elseif ttl == -1 then most = -1
    elseif most ~= -1 and ttl > most then most = ttl end
  end
  if most == -1 then redis.call('PERSIST', index) elseif most > 0 then redis.call('PEXPIRE', index, most) end
end
"""

# KEYS: the conversation's listed items (``K.items_listed``), an item. ARGV: its id. Listed (a store written before
# the list: ``redis_retention``).
_ITEMS_LIST = (
    _LISTED
    + """
relist(KEYS[1], KEYS[2], ARGV[1])
return 1
"""
)

# KEYS: item, its conversation's transcript, its index, its unread set, its listed items (``_LISTED``: an item
# without an entry joins them). ARGV: id, conversation, payload, created,
# next, the entry's score among those awaiting a read receipt or ''. 1 when the item is pending now (put, or put
# before), 0 when it was resolved already: sent (then deleted once its transcript entry records the send: that
# entry, no longer pending, is the mark) or failed. With a score, the entry of a new item awaits its read receipt
# from then on (an item without an entry, a notice's, adds nothing).
_OUTBOX_PUT_ITEM = (
    _ENTRIES
    + _LISTED
    + """
local status = redis.call('HGET', KEYS[1], 'status')
if status then return status == 'pending' and 1 or 0 end
local _, entry = find_entry(KEYS[2], KEYS[3], ARGV[1])
if entry and string.sub(entry, #ARGV[1] + 2, #ARGV[1] + 2) ~= 'p' then return 0 end
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'conv', ARGV[2], 'payload', ARGV[3], 'created_us', ARGV[4],
           'next_us', ARGV[5], 'attempts', 0, 'status', 'pending')
if entry and ARGV[6] ~= '' then awaits_read(KEYS[2], KEYS[4], ARGV[1], ARGV[6]) end
if not entry then relist(KEYS[5], KEYS[1], ARGV[1]) end  -- no transcript entry leads to it
return 1
"""
)

# A message's replies of one conversation, each its transcript entry and its outbox item, in one step (one slot:
# the conversation's), as ``put_entry`` then ``outbox_put_item`` would run them back to back for each in turn, a
# short transcript read once; before them, the entries held just before them without an item (the young person's
# message), each as ``put_entry`` writes it. KEYS: the transcript, its index, its unread set, then the items. ARGV:
# conversation, the number of entries without an item, each's id and entry, then per item: entry id, the entry,
# sealed payload, created µs, next attempt µs, its unread score or ''.
_PUT_ENTRY_ITEM = (
    _ENTRIES
    + """
local codes  -- a short transcript's delivery code of each entry, by id (the last of an id, as find_entry)
if not indexed(KEYS[1], KEYS[2], redis.call('LLEN', KEYS[1])) then
  codes = {}
  for _, v in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
    local nl = string.find(v, '\\n', 1, true)
    if nl then codes[string.sub(v, 1, nl - 1)] = string.sub(v, nl + 1, nl + 1) end
  end
end
local function put(id, value)  -- written once: the code of the entry there, or of this one once pushed
  local code
  if codes then
    code = codes[id]
  else
    local _, v = find_entry(KEYS[1], KEYS[2], id)
    if v then code = string.sub(v, #id + 2, #id + 2) end
  end
  if not code then
    push_entry(KEYS[1], KEYS[2], id, value)
    code = string.sub(value, #id + 2, #id + 2)
    if codes then codes[id] = code end
  end
  return code
end
local plain = tonumber(ARGV[2])
for j = 1, plain do put(ARGV[1 + 2 * j], ARGV[2 + 2 * j]) end
local unread = {}  -- the new items' entries awaiting a read receipt: joined in one step, as ``awaits_read``
for i = 4, #KEYS do
  local a = 3 + 2 * plain + (i - 4) * 6
  local id = ARGV[a]
  local code = put(id, ARGV[a + 1])
  if not redis.call('HGET', KEYS[i], 'status') and code == 'p' then
    redis.call('HSET', KEYS[i], 'id', id, 'conv', ARGV[1], 'payload', ARGV[a + 2], 'created_us', ARGV[a + 3],
               'next_us', ARGV[a + 4], 'attempts', 0, 'status', 'pending')
    if ARGV[a + 5] ~= '' then
      table.insert(unread, ARGV[a + 5])
      table.insert(unread, id)
    end
  end
end
if #unread > 0 then
  redis.call('ZADD', KEYS[3], unpack(unread))
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl > 0 then redis.call('PEXPIRE', KEYS[3], ttl) end
end
return 1
"""
)

# KEYS: the conversation's line, heads, sequence, the pending set. ARGV: conversation, then per item (in put order):
# id, next µs, created µs. Each listed once, however often it runs; an id listed after its item was resolved is
# dropped by ``outbox_due``. An item due before it was written (a risky turn's reply: ``Dispatcher.emit``) takes its
# line ahead when the line's head waits (due by then: neither leased nor backing off): the head is due at its time,
# and the conversation's earlier replies go first with it, in order (their items are due already); the line is
# urgent (``_URGENT``) until it is resolved, whatever their state.
_OUTBOX_LIST = (
    _LINES
    + """
local n = (#ARGV - 1) / 3
local seq = redis.call('INCRBY', KEYS[3], n) - n  -- one number an id, in put order (one listed already skips its)
local pending = {}  -- the ids this call lists, for the pending set in one ZADD
for i = 2, #ARGV, 3 do
  seq = seq + 1
  if redis.call('ZADD', KEYS[1], 'NX', seq, ARGV[i]) == 1 then
    -- the first id this call lists heads the line when it is alone there; the ones after it never do
    if #pending == 0 and redis.call('ZCARD', KEYS[1]) == 1 then redis.call('ZADD', KEYS[2], ARGV[i + 1], ARGV[1]) end
    local due, created = tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
    if due < created then
      local head = tonumber(redis.call('ZSCORE', KEYS[2], ARGV[1]))
      if head and head <= created and head > due then redis.call('ZADD', KEYS[2], ARGV[i + 1], ARGV[1]) end
      urge(KEYS[2], KEYS[1], ARGV[1], ARGV[i])  -- and its line stays urgent until it is resolved
    end
    table.insert(pending, ARGV[i + 2])
    table.insert(pending, ARGV[1] .. ' ' .. ARGV[i])
  end
end
if #pending > 0 then redis.call('ZADD', KEYS[4], unpack(pending)) end
return 1
"""
)

# KEYS: heads, the claim's record (``claim:<token>``), the answered claim's record. ARGV: prefix, now µs, limit,
# lease end µs, run, the claim's token or '', '1' to drop the answered claim's record (its caller got its answer).
# Claims the due conversations' lines for the lease (their heads' score) and returns {conversation, head
# id, the next ids} (``run`` ids at most); ``outbox_claim`` then claims the items of each. With a token, the lines
# claimed are recorded under it for the lease: the same claim sent again (its answer lost after it ran) hands out
# those lines again (their first ids now), instead of leaving them held for the lease by a claim nobody knows of.
_OUTBOX_DUE = (
    _LINES
    + """
if ARGV[7] == '1' then redis.call('DEL', KEYS[3]) end
if ARGV[6] ~= '' and redis.call('EXISTS', KEYS[2]) == 1 then
  local found = {}
  for _, owner in ipairs(redis.call('LRANGE', KEYS[2], 0, -1)) do
    local ids = redis.call('ZRANGE', ARGV[1] .. 'conv:' .. owner, 0, tonumber(ARGV[5]) - 1)
    if ids[1] then table.insert(found, {owner, unpack(ids)}) end
  end
  return found
end
local found = due_heads(KEYS[1], ARGV[1] .. 'conv:', ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]))
if ARGV[6] ~= '' and found[1] then
  for _, line in ipairs(found) do redis.call('RPUSH', KEYS[2], line[1]) end
  redis.call('PEXPIRE', KEYS[2], math.max(1, math.floor((tonumber(ARGV[4]) - tonumber(ARGV[2])) / 1000)))
end
return found
"""
)

# KEYS: a conversation's items, in its line's order (one slot). ARGV: now µs, lease end µs, '1' when the caller's
# claim has a token. One answer per item, in order, up to the first not due: {'ok', fields} once claimed (its next_us
# is the lease end: the fencing token); {'gone'} when resolved or missing (skipped: nothing to send); {'later', next
# µs} when not due yet, and the items after it are left alone (a conversation's items go out in order). With a
# token, an item leased to this very lease end is this claim's, sent again (its answer lost): handed out again.
_OUTBOX_CLAIM = """
local answers = {}
for _, item in ipairs(KEYS) do
  local fields = redis.call('HGETALL', item)  -- read once: its state, and what is handed out
  local status, at = nil, nil
  for j = 1, #fields, 2 do
    if fields[j] == 'status' then status = fields[j + 1] elseif fields[j] == 'next_us' then at = j + 1 end
  end
  if status ~= 'pending' then
    table.insert(answers, {'gone'})
  else
    local next_us = at and fields[at] or '0'
    if tonumber(next_us) > tonumber(ARGV[1]) and not (ARGV[3] == '1' and next_us == ARGV[2]) then
      table.insert(answers, {'later', next_us})
      return answers
    end
    redis.call('HSET', item, 'next_us', ARGV[2])
    if at then fields[at] = ARGV[2] else table.insert(fields, 'next_us'); table.insert(fields, ARGV[2]) end
    table.insert(answers, {'ok', fields})
  end
end
return answers
"""

# KEYS: the conversation's line, heads, the pending set. ARGV: id, conversation, its due µs (or '' to drop it from
# the line and the pending set), when dropped: '' or the lease end (µs) under which the caller holds the line's next
# item. Heads follow the line's head: due at ``ARGV[3]`` while this id heads it; once dropped, at ``ARGV[4]`` if
# given, else at once (``outbox_claim`` reads).
_OUTBOX_LINE = (
    _URGENT
    + _REHEAD
    + """
if ARGV[3] == '' then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('ZREM', KEYS[3], ARGV[2] .. ' ' .. ARGV[1])
  rehead(KEYS[2], KEYS[1], ARGV[2], false, ARGV[4] ~= '' and ARGV[4] or nil)
elseif redis.call('ZRANGE', KEYS[1], 0, 0)[1] == ARGV[1] then
  retime(KEYS[2], ARGV[2], ARGV[3])
end
return 1
"""
)

# KEYS: item. ARGV: the lease end the caller holds (µs), the new end. Refused (false) once claimed again since;
# else the conversation.
_OUTBOX_RENEW = (
    _HELD
    + """
if not held(KEYS[1], ARGV[1]) then return false end
redis.call('HSET', KEYS[1], 'next_us', ARGV[2])
return redis.call('HGET', KEYS[1], 'conv')
"""
)

# KEYS: item, its conversation's transcript, its index, its unread set, its listed items (``_LISTED``: an item kept
# joins them), its kept watermark. ARGV: status, field or '', value, seconds kept, the provider id's digest (each
# part's: what the entry's head keeps, ``_ENTRIES``) or '', the delivery's code, the lease end the caller holds (µs)
# or '', the item's id, when the provider's answer came (µs) or ''. The transcript entry of the same id shows the
# result in the same step (never sent but shown pending), a sent one with a watermark kept for it when it applies
# (``_WATERMARKS``: the code then shown is the answer instead of 1). A sent item keeps no payload (the transcript
# has the text): what is left tells it was sent, until it expires; it is deleted at once
# when its entry records the send with a provider id (the entry then tells a retry), kept when the send gave none
# (its lease's end, ``next_us``, then tells a retry: until 2026-12-02 it was deleted too, and the retry of a record
# whose answer was lost was refused as another worker's, the run's next replies left to their lease). Returns 1, 2
# when the item was resolved so already under this lease (``resolved_before``: a retry of a record whose answer was
# lost; a send's retry answers instead the code its entry shows when further, as its first try did a watermark's:
# until 2026-12-06 it answered 2, and the outbox told the console `sent` for a reply shown read), or false when not
# held.
_OUTBOX_RESOLVE = (
    _HELD
    + _ENTRIES
    + _LISTED
    + _WATERMARKS
    + """
local function resolved_before(item, status, token, pmid, list, index, id)
  if token == '' then return false end
  local now = redis.call('HGET', item, 'status')
  if now then return now == status and redis.call('HGET', item, 'next_us') == token end
  if status ~= 'sent' or pmid == '' then return false end  -- a sent item dropped (its entry records the send):
  local at, v = find_entry(list, index, id)                 -- its provider id tells
  if not at or string.sub(v, #id + 2, #id + 2) == 'p' then return false end
  return part_ids(string.sub(v, #id + 3, string.find(v, '\\n', #id + 2, true) - 1)) == pmid
end
if not held(KEYS[1], ARGV[7]) then
  if not resolved_before(KEYS[1], ARGV[1], ARGV[7], ARGV[5], KEYS[2], KEYS[3], ARGV[8]) then return false end
  if ARGV[1] == 'sent' then  -- answered as the first try was: a kept watermark it showed (read only on a retry)
    local at, v = find_entry(KEYS[2], KEYS[3], ARGV[8])
    local c = at and string.sub(v, #ARGV[8] + 2, #ARGV[8] + 2)
    if c == 'r' or (c == 'd' and ARGV[6] == 's') then return c end
  end
  return 2
end
local code, answer = ARGV[6], 1
if ARGV[1] == 'sent' then code = watermarked(KEYS[6], KEYS[4], ARGV[8], code, ARGV[9]) end
if code ~= ARGV[6] then answer = code end
local shown = set_delivery(KEYS[2], KEYS[3], KEYS[4], ARGV[8], code, ARGV[5])
if ARGV[1] == 'sent' then answered_by(KEYS[4], ARGV[8], code, ARGV[9]) end
if ARGV[1] == 'sent' and shown == 1 and (ARGV[5] ~= '' or ARGV[7] == '') then
  redis.call('DEL', KEYS[1])  -- its transcript entry records the send: the mark ``outbox_put`` reads
  return answer
end  -- a fenced send without a provider id keeps what is left of its item (below): its lease's end tells a retry
if ARGV[2] ~= '' then
  redis.call('HSET', KEYS[1], 'status', ARGV[1], ARGV[2], ARGV[3])
else
  redis.call('HSET', KEYS[1], 'status', ARGV[1])
end
if ARGV[1] == 'sent' then  -- rebuilt without the payload: a small hash takes Redis's compact encoding again
  local f = {'id', 'conv', 'created_us', 'next_us', 'attempts', 'status', 'pmid', 'parts_sent'}
  local v, kept = redis.call('HMGET', KEYS[1], unpack(f)), {}
  for i = 1, #f do if v[i] then table.insert(kept, f[i]); table.insert(kept, v[i]) end end
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], unpack(kept))  -- status at least: never empty
end
redis.call('EXPIRE', KEYS[1], ARGV[4])
relist(KEYS[5], KEYS[1], ARGV[8])
return answer
"""
)

# A send with a provider id recorded on one Redis node (standalone or Sentinel's primary: every key on that node;
# never in Cluster, where these keys live in four slots and ``outbox_resolve`` and ``outbox_line`` run apart): in one
# step, the receipt kept for the provider id (``keep_receipt``) read, applied on the entry with the send (the
# furthest of it and sent, as ``sent_shown``) and taken (its key deleted, its id unlisted), the provider id's day
# index written with its expiry (a key an erasure emptied never left without its TTL), and the conversation's line's
# step (``outbox_line``'s, the item dropped). A receipt kept before this step is applied by it; one kept after it
# finds the index written (its keeper looks the id up after keeping it, ``Dispatcher``) and is applied by its
# keeper: no read after the record, no window between a read and the record (issue 8's twenty-third pass).
# KEYS: item, transcript, its index, its unread set, the kept receipt's key, the kept receipts' list, the provider
# id's day index, the conversation's line, heads, the pending set, the conversation's listed items (``_LISTED``), its
# kept watermark (``_WATERMARKS``, applied after the kept receipt). ARGV: seconds kept, provider id, the lease end the
# caller holds (µs) or '', the item's id, the index's field, the conversation, the index's expiry (s since the epoch),
# '' or the lease end (µs) under which the caller holds the line's next item, '' or the code of a receipt the caller
# read itself (applied as one kept), when the provider's answer came (µs) or '', the provider id's digest (what the
# entry's head keeps: ``_ENTRIES``), then optionally a channel and an event: published once the send is recorded,
# when the entry shows it sent ('s'; ``RedisStore._sent_taking_kept``).
# Returns the code the entry shows ({1, code, 1 when the event was published else 0}; {2, code, 0} when recorded so
# already under this lease: a retry whose first try ran, its answer lost), or false when not held.
_OUTBOX_SENT = (
    _HELD
    + _ENTRIES
    + _REHEAD
    + _LISTED
    + _WATERMARKS
    + """
local RANK = {s = 1, d = 2, r = 3, f = 4}
local answer, code = 1, 's'
if RANK[ARGV[9]] then code = ARGV[9] end
if not held(KEYS[1], ARGV[3]) then
  if ARGV[3] == '' then return false end
  local now = redis.call('HGET', KEYS[1], 'status')
  if now then
    if now ~= 'sent' or redis.call('HGET', KEYS[1], 'next_us') ~= ARGV[3] then return false end
  else  -- dropped: its entry records the send, and its provider id tells whose
    local at, v = find_entry(KEYS[2], KEYS[3], ARGV[4])
    if not at or string.sub(v, #ARGV[4] + 2, #ARGV[4] + 2) == 'p' then return false end
    if part_ids(string.sub(v, #ARGV[4] + 3, string.find(v, '\\n', #ARGV[4] + 2, true) - 1)) ~= ARGV[11] then
      return false
    end
    code = string.sub(v, #ARGV[4] + 2, #ARGV[4] + 2)
  end
  answer = 2
else
  local kept = redis.call('HKEYS', KEYS[5])
  for _, status in ipairs(kept) do
    local c = string.sub(status, 1, 1)
    if RANK[c] and RANK[c] > RANK[code] then code = c end
  end
  code = watermarked(KEYS[12], KEYS[4], ARGV[4], code, ARGV[10])
  if set_delivery(KEYS[2], KEYS[3], KEYS[4], ARGV[4], code, ARGV[11]) == 1 then
    answered_by(KEYS[4], ARGV[4], code, ARGV[10])
    redis.call('DEL', KEYS[1])  -- its transcript entry records the send: the mark ``outbox_put`` reads
  else  -- no entry (a notice's item): what is left of it tells it was sent, until it expires
    redis.call('HSET', KEYS[1], 'status', 'sent', 'pmid', ARGV[2])
    local f = {'id', 'conv', 'created_us', 'next_us', 'attempts', 'status', 'pmid', 'parts_sent'}
    local v, left = redis.call('HMGET', KEYS[1], unpack(f)), {}
    for i = 1, #f do if v[i] then table.insert(left, f[i]); table.insert(left, v[i]) end end
    redis.call('DEL', KEYS[1])
    redis.call('HSET', KEYS[1], unpack(left))
    redis.call('EXPIRE', KEYS[1], ARGV[1])
    relist(KEYS[11], KEYS[1], ARGV[4])
  end
  if #kept > 0 then
    redis.call('DEL', KEYS[5])
    redis.call('ZREM', KEYS[6], ARGV[2])
  end
end
redis.call('HSET', KEYS[7], ARGV[5], ARGV[6])
redis.call('EXPIREAT', KEYS[7], ARGV[7])
redis.call('ZREM', KEYS[8], ARGV[4])
redis.call('ZREM', KEYS[10], ARGV[6] .. ' ' .. ARGV[4])
rehead(KEYS[9], KEYS[8], ARGV[6], false, ARGV[8] ~= '' and ARGV[8] or nil)
if answer == 1 and code == 's' and ARGV[12] then
  redis.call('PUBLISH', ARGV[12], ARGV[13])
  return {answer, code, 1}
end
return {answer, code, 0}
"""
)

# KEYS: item, its conversation's transcript, its index, its unread set, its listed items (``_LISTED``). ARGV: reason,
# seconds kept, the failed delivery's code, the item's id.
# An item whose stored fields cannot be read: failed (kept for an operator as a failed one, 7 days: seconds, until
# 2026-12-06 given to PEXPIRE, ~10 minutes).
_OUTBOX_SET_ASIDE = (
    _ENTRIES
    + _LISTED
    + """
redis.call('HSET', KEYS[1], 'status', 'failed', 'last_error', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
relist(KEYS[5], KEYS[1], ARGV[4])
set_delivery(KEYS[2], KEYS[3], KEYS[4], ARGV[4], ARGV[3], '')
return 1
"""
)

# KEYS: item. ARGV: next µs, attempts, last error, parts sent (kept if larger), the lease end the caller holds (µs)
# or ''. Returns the conversation, or false. An item rescheduled so already (still pending, due at this very µs after
# this many attempts: a retry of this call whose first try ran, its answer lost) answers as made, changing nothing.
_OUTBOX_RESCHEDULE = (
    _HELD
    + """
if not held(KEYS[1], ARGV[5]) then
  local now = redis.call('HMGET', KEYS[1], 'status', 'next_us', 'attempts', 'conv')
  if ARGV[5] ~= '' and now[1] == 'pending' and now[2] == ARGV[1] and now[3] == ARGV[2] then return now[4] end
  return false
end
redis.call('HSET', KEYS[1], 'next_us', ARGV[1], 'attempts', ARGV[2], 'last_error', ARGV[3])
if tonumber(ARGV[4]) > tonumber(redis.call('HGET', KEYS[1], 'parts_sent') or '0') then
  redis.call('HSET', KEYS[1], 'parts_sent', ARGV[4])
end
return redis.call('HGET', KEYS[1], 'conv')
"""
)

# Timers. KEYS: timers. ARGV: the members to cancel.
_CANCEL_TIMERS = """
for _, member in ipairs(ARGV) do redis.call('ZREM', KEYS[1], member) end
return 1
"""

# KEYS: timers. ARGV: member, due µs.
_TIMER_DONE = """
local due = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not due or tonumber(due) ~= tonumber(ARGV[2]) then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
return 1
"""

# KEYS: timers. ARGV: member, due µs as read, new due µs.
_TIMER_POSTPONE = """
local due = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not due or tonumber(due) ~= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
return 1
"""

# Late readings waiting: "hg:{late}:held" (a member "<conversation id> <entry id>" scored by its hold's end, µs) and
# "hg:{late}:info" (the member -> "<owner> <queued µs> <windows 0|1> <claims>"), one slot.
# KEYS: held, info. ARGV: member, owner, queued µs, windows, hold's end µs, the keys' TTL (s).
_LATE_PUT = """
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2] .. ' ' .. ARGV[3] .. ' ' .. ARGV[4] .. ' 0') == 1 then
  redis.call('ZADD', KEYS[1], ARGV[5], ARGV[1])
end
redis.call('EXPIRE', KEYS[1], ARGV[6])
redis.call('EXPIRE', KEYS[2], ARGV[6])
return 1
"""

# KEYS: held, info. ARGV: owner, hold's end µs, members. The members still the owner's (renewed).
_LATE_HOLD = """
local kept, mine = {}, ARGV[1] .. ' '
for i = 3, #ARGV do
  local info = redis.call('HGET', KEYS[2], ARGV[i])
  if info and string.sub(info, 1, #mine) == mine and redis.call('ZSCORE', KEYS[1], ARGV[i]) then
    redis.call('ZADD', KEYS[1], ARGV[2], ARGV[i])
    kept[#kept + 1] = ARGV[i]
  end
end
return kept
"""

# KEYS: held, info. ARGV: owner, now µs, hold's end µs, limit. Per record claimed: member, queued µs, windows, claims.
_LATE_CLAIM = """
local found = {}
for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[4]))) do
  local info = redis.call('HGET', KEYS[2], member)
  local queued, windows, claims
  if info then queued, windows, claims = string.match(info, '^%S+ (%d+) (%d) (%d+)$') end
  if queued then
    claims = tonumber(claims) + 1
    redis.call('HSET', KEYS[2], member, ARGV[1] .. ' ' .. queued .. ' ' .. windows .. ' ' .. claims)
    redis.call('ZADD', KEYS[1], ARGV[3], member)
    found[#found + 1] = member
    found[#found + 1] = queued
    found[#found + 1] = windows
    found[#found + 1] = tostring(claims)
  else
    redis.call('ZREM', KEYS[1], member)
    redis.call('HDEL', KEYS[2], member)
  end
end
return found
"""

# KEYS: held, info. ARGV: a member, or a conversation's prefix "<conversation id> " and "prefix": its every record.
_LATE_FORGET = """
local members = {ARGV[1]}
if ARGV[2] == 'prefix' then
  members = {}
  for _, member in ipairs(redis.call('HKEYS', KEYS[2])) do
    if string.sub(member, 1, #ARGV[1]) == ARGV[1] then members[#members + 1] = member end
  end
end
for _, member in ipairs(members) do
  redis.call('HDEL', KEYS[2], member)
  redis.call('ZREM', KEYS[1], member)
end
return #members
"""

# The inbox: every key under "hg:{inbox}:" (ARGV[1]), one slot.
# KEYS: heads, sequence. ARGV: prefix, then per item: id, sender key, payload, received µs, next µs. An item due
# before it was received (a risky message) takes its sender's earlier items that wait (due by then: neither leased
# nor backing off) to its time, and the line's place in ``heads`` with them; the line is urgent (``_URGENT``) until
# it is done, whatever their state.
_INBOX_PUT = (
    _LINES
    + _REHEAD
    + """
for i = 2, #ARGV, 5 do
  local item = ARGV[1] .. 'item:' .. ARGV[i]
  if redis.call('EXISTS', item) == 0 then
    redis.call('HSET', item, 'id', ARGV[i], 'sender', ARGV[i + 1], 'payload', ARGV[i + 2],
               'received_us', ARGV[i + 3], 'next_us', ARGV[i + 4], 'attempts', 0)
    local line = ARGV[1] .. 'sender:' .. ARGV[i + 1]
    join(line, KEYS[2], KEYS[1], ARGV[i], ARGV[i + 1], ARGV[i + 4])
    local due, received = tonumber(ARGV[i + 4]), tonumber(ARGV[i + 3])
    if due < received then
      for _, ahead in ipairs(redis.call('ZRANGE', line, 0, -2)) do
        local next_us = tonumber(redis.call('HGET', ARGV[1] .. 'item:' .. ahead, 'next_us'))
        if next_us and next_us <= received and next_us > due then
          redis.call('HSET', ARGV[1] .. 'item:' .. ahead, 'next_us', ARGV[i + 4])
        end
      end
      rehead(KEYS[1], line, ARGV[i + 1], ARGV[1] .. 'item:')
      urge(KEYS[1], line, ARGV[i + 1], ARGV[i])  -- and its line stays urgent until it is done
    end
  end
end
return 1
"""
)

# KEYS: heads. ARGV: prefix, now µs, limit, lease end µs. Returns each claimed item's fields (HGETALL).
_INBOX_DUE = (
    _LINES
    + """
local items = {}
for _, found in ipairs(due_heads(KEYS[1], ARGV[1] .. 'sender:', ARGV[2], ARGV[3], ARGV[4], 1)) do
  local item = ARGV[1] .. 'item:' .. found[2]
  redis.call('HSET', item, 'next_us', ARGV[4])
  table.insert(items, redis.call('HGETALL', item))
end
return items
"""
)

# KEYS: item, heads. ARGV: prefix, id. The item leaves its sender's line.
_INBOX_DONE = (
    _REHEAD
    + """
local sender = redis.call('HGET', KEYS[1], 'sender')
if not sender then return 0 end
redis.call('DEL', KEYS[1])
local line = ARGV[1] .. 'sender:' .. sender
redis.call('ZREM', line, ARGV[2])
rehead(KEYS[2], line, sender, ARGV[1] .. 'item:')
return 1
"""
)

# KEYS: item, heads, set-aside item, set-aside index. ARGV: prefix, id, set aside at µs. The item leaves its
# sender's line (as ``inbox_done``) and is kept under another key, indexed by when it was set aside.
_INBOX_SET_ASIDE = (
    _REHEAD
    + """
local sender = redis.call('HGET', KEYS[1], 'sender')
if not sender then return 0 end
redis.call('RENAME', KEYS[1], KEYS[3])
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[2])
local line = ARGV[1] .. 'sender:' .. sender
redis.call('ZREM', line, ARGV[2])
rehead(KEYS[2], line, sender, ARGV[1] .. 'item:')
return 1
"""
)

# KEYS: item, heads. ARGV: prefix, id, next µs, attempts, the holder's lease end µs ('' : unfenced). A lease that
# lapsed (the item handed out again since, its ``next_us`` another lease's end) changes nothing.
_INBOX_RETRY = (
    _URGENT
    + """
local sender = redis.call('HGET', KEYS[1], 'sender')
if not sender then return 0 end
if ARGV[5] ~= '' and redis.call('HGET', KEYS[1], 'next_us') ~= ARGV[5] then return 0 end
redis.call('HSET', KEYS[1], 'next_us', ARGV[3], 'attempts', ARGV[4])
if redis.call('ZRANGE', ARGV[1] .. 'sender:' .. sender, 0, 0)[1] == ARGV[2] then
  retime(KEYS[2], sender, ARGV[3])
end
return 1
"""
)

# KEYS: the conversation lock. ARGV: its holder's token. The release ``Lock.release`` makes, as a pipeline step
# (``RedisStore.locked_batch``): a lapsed lock, somebody else's now, is left alone.
# KEYS: the lock, and (since 2026-12-07) its holder's count of fenced writes (``_FENCE``), deleted with it.
_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1], KEYS[2] or KEYS[1]) end
return 0
"""

# The lock's renewal (redis-py's ``reacquire``, since 2026-12-07 with the count of fenced writes, ``_FENCE``, kept as
# long). KEYS: the lock, the count. ARGV: the holder's token, the lease (ms).
_LOCK_RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1
"""

# KEYS: the conversation lock, the conversation's record, its erasure begun (``redis_keys.erasing``), and for a
# message's processing the ending it has listed as begun (``redis_keys.leaving``; one slot: ``{<id>}``). ARGV: the
# holder's token, the lease (ms). Taken (SET NX PX, as ``redis.asyncio.lock.Lock`` takes it) with the record read in
# the same step: {'locked', Redis's time (ms), record or nil, erasing or nil[, how or nil]}; false while another
# holds it. Read by one MGET: a message's lock makes no call more than another's (the erasure's key since 2026-12-07:
# a key more, no call). The time (since 2026-12-07): when the lease began, on Redis's clock (``_Fence.deadline``).
_LOCK_READ = """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return false end
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
if KEYS[4] then
  local found = redis.call('MGET', KEYS[2], KEYS[3], KEYS[4])
  return {'locked', ms, found[1], found[2], found[3]}
end
local found = redis.call('MGET', KEYS[2], KEYS[3])
return {'locked', ms, found[1], found[2]}
"""

# A rate limit's fixed-window counter, hit as the ``limits`` library's ``incr_expire.lua`` hits it (the same key:
# instances of either kind share the count). KEYS: the counter. ARGV: the window (s), the amount. The count now.
_HIT = """
local current = redis.call('INCRBY', KEYS[1], tonumber(ARGV[2]))
if current == tonumber(ARGV[2]) then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return current
"""

# The same counter hit once per message: KEYS: the counter, its window's marks (a hash hash-tagged by the counter's
# key, so one slot: ``Counter.marks``). ARGV: the window (s), the amount, the limit's amount, the message's mark (a
# field). A mark there: the count the message's first hit brought, the counter untouched (a redelivery, a retry after
# a 503); else the hit, and the count now kept in the mark until the counter's window ends (the hash expires with the
# counter: a message refused then sent again in the next window is counted again there) when it is within the limit:
# a hit past it leaves no mark (its next attempt is past it too), so a flood does not grow the hash past the limit's
# amount. The count now, or the mark's. Until 2026-12-06 one key per mark (``bench/load.py --bytes``: 200 B each).
_HIT_ONCE = """
local seen = redis.call('HGET', KEYS[2], ARGV[4])
if seen then return tonumber(seen) end
local current = redis.call('INCRBY', KEYS[1], tonumber(ARGV[2]))
if current == tonumber(ARGV[2]) then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
if current <= tonumber(ARGV[3]) then
  local left = redis.call('PTTL', KEYS[1])
  if left <= 0 then left = tonumber(ARGV[1]) * 1000 end
  redis.call('HSET', KEYS[2], ARGV[4], current)
  redis.call('PEXPIRE', KEYS[2], left)
end
return current
"""

# A receipt kept for a provider id no entry holds yet (``redis_keys.kept_receipt``), a hash: status -> 1.
# KEYS: its key. ARGV: the status, its TTL (ms).
_KEEP_RECEIPT = """
redis.call('HSET', KEYS[1], ARGV[1], 1)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
"""

# KEYS: a kept receipt's key. Its statuses, the key deleted.
_TAKE_RECEIPT = """
local kept = redis.call('HKEYS', KEYS[1])
redis.call('DEL', KEYS[1])
return kept
"""

# When listeners were last at a console (``RedisStore.mark_present``): each keeps the latest time recorded.
# KEYS: the hash. ARGV: its TTL (ms), then name, µs pairs.
_MARK_PRESENT = """
for i = 2, #ARGV, 2 do
  local old = redis.call('HGET', KEYS[1], ARGV[i])
  if not old or tonumber(old) < tonumber(ARGV[i + 1]) then redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
"""

# ``hg:sealing:{instances}`` (gateway/sealing.py): one instance's advert recorded ("<key id> <µs>"), those older
# than ARGV[3] (µs) removed, the hash kept ARGV[4] ms after the last advert; every advert returned (HGETALL).
_ADVERTISE_SEALING = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local found = redis.call('HGETALL', KEYS[1])
local kept = {}
for i = 1, #found, 2 do
  local at = tonumber(string.match(found[i + 1], ' (%d+)$') or '')
  if at == nil or at < tonumber(ARGV[3]) then
    redis.call('HDEL', KEYS[1], found[i])
  else
    kept[#kept + 1] = found[i]
    kept[#kept + 1] = found[i + 1]
  end
end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return kept
"""

# ``hg:{queue}:moving``, the transfers listed as begun: a hash, id → mover, since 2026-12-03 (branch rel24); an
# instance of before kept a set of ids (SADD, SREM, SMEMBERS), which a rolling deploy may leave or write again. Made a
# hash in the script's one step, each id's mover unknown (''): no transfer it lists is lost, none read twice.
_MOVING = """
local function moving_hash(key)
  if redis.call('TYPE', key)['ok'] ~= 'set' then return 0 end
  local ids = redis.call('SMEMBERS', key)
  redis.call('DEL', key)
  for _, id in ipairs(ids) do redis.call('HSET', key, id, '') end
  return #ids
end
local function on_hash(command, key, ...)  -- the command, and again on the hash made of an old set (a WRONGTYPE)
  local done = redis.pcall(command, key, ...)
  if type(done) == 'table' and done['err'] then
    if moving_hash(key) == 0 then return redis.error_reply(done['err']) end
    return redis.call(command, key, ...)
  end
  return done
end
"""

# KEYS: the list of transfers begun, the list of endings begun. ARGV: id, mover. HSET, on the hash made of an old set
# if need be; nothing (-1) for a conversation whose ending is listed (its transfer or hand-back is refused by its queue
# step, in the same round trip: nothing moves, nothing to list).
_BEGIN_MOVE = _MOVING + (
    "if KEYS[2] and redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return -1 end\n"
    "return on_hash('HSET', KEYS[1], ARGV[1], ARGV[2])\n"
)

# KEYS: the list of transfers begun. ARGV: id. HDEL, on the hash made of an old set if need be.
_END_MOVE = _MOVING + "return on_hash('HDEL', KEYS[1], ARGV[1])\n"

# KEYS: the list of transfers begun. An old set made a hash: how many ids it listed (0: it was not a set).
_MOVING_HASH = _MOVING + "return moving_hash(KEYS[1])\n"

# KEYS: entries, sequence, queue names, the list of transfers begun (``moving``). ARGV: prefix, id, the queue and the
# member's head ("<rank>:<arrival µs>:") a refused commit's ``enqueue`` wrote, the entry to put back (JSON), its
# queue, rank and arrival, its taker ('' for waiting), '1' to unlist the conversation's move. A refused commit's queue
# step undone as the record says (``RedisStore._unqueue_refused``, since 2026-12-07): only while the entry is the one
# that commit wrote (waiting, in that queue, at that place); the transfer's listing goes with it, in the same step.
# 1 when put back, 0 when the entry is another's (moved on meanwhile) or gone.
_PUT_BACK = (
    _HOLDING
    + _MOVING
    + """
local raw = redis.call('HGET', KEYS[1], ARGV[2])
if not raw then return 0 end
local e = cjson.decode(raw)
if e['taken_by'] ~= cjson.null or e['queue'] ~= ARGV[3] or string.sub(e['member'], 1, #ARGV[4]) ~= ARGV[4] then
  return 0
end
redis.call('ZREM', ARGV[1] .. 'waiting:' .. e['queue'], e['member'])
local seq = redis.call('INCR', KEYS[2])
local member = ARGV[7] .. ':' .. ARGV[8] .. ':' .. string.format('%012d', seq) .. ':' .. ARGV[2]
local entry = cjson.decode(ARGV[5])
entry['member'] = member
redis.call('HSET', KEYS[1], ARGV[2], cjson.encode(entry))
if ARGV[9] ~= '' then
  redis.call('SADD', ARGV[1] .. 'held:' .. ARGV[9], ARGV[2])
  holding(ARGV[1], ARGV[9])
else
  redis.call('ZADD', ARGV[1] .. 'waiting:' .. ARGV[6], 0, member)
  redis.call('SADD', KEYS[3], ARGV[6])
end
if ARGV[10] == '1' then on_hash('HDEL', KEYS[4], ARGV[2]) end
return 1
"""
)

# KEYS: the list of endings begun (``hg:{queue}:leaving``), the conversation's copy of its field (``hg:lv:{<conv>}``).
# ARGV: id, how, the copy's TTL (s). On one node only (the two keys are in different slots): the listing and its copy
# in one step, so a cut leaves both or neither (``RedisStore.begin_leaving``).
_BEGIN_LEAVING = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
"""

# An erasure listed (``store.begin_erasure``): ARGV[2] merged with what the hash lists for ARGV[1] as
# ``store.erasure_listed`` merges (an asker's, "asked-by:...", and a young person's message key kept both, the asker's
# first and a newline; an asker over an asker keeps the first, the second's actors added to its JSON up to ARGV[3]
# names; a key replaces a key), each part of ARGV[2] merged so whether it holds one part or both. Until 2026-12-07 (the
# later fix of that day) a listing holding both, merged onto an asker's, was dropped, onto a key alone made three
# parts, and a second asker was dropped. The JSON written again only when an actor is added (``cjson``: read back by
# Python's ``json``, which reads its escapes alike).
_ERASURE_LISTED = """
local function parts(s)
  if string.sub(s, 1, 9) ~= 'asked-by:' then
    if s == '' then return nil, nil end
    return nil, s
  end
  local cut = string.find(s, '\\n', 1, true)
  if not cut then return s, nil end
  local rest = string.sub(s, cut + 1)
  if rest == '' then rest = nil end
  return string.sub(s, 1, cut - 1), rest
end
local function askers(line)
  local ok, found = pcall(cjson.decode, string.sub(line, 10))
  if not ok or type(found) ~= 'table' or #found < 2 then return nil end
  for i = 1, #found do
    if type(found[i]) ~= 'string' then return nil end
  end
  return found
end
local listed = redis.call('HGET', KEYS[1], ARGV[1])
local key = ARGV[2]
if listed then
  local asked, confirmed = parts(listed)
  local new_asked, new_confirmed = parts(key)
  local asker = asked or new_asked
  if asked and new_asked then
    local kept, more = askers(asked), askers(new_asked)
    if kept and more then
      local most, added = tonumber(ARGV[3]), false
      local candidates = {more[1]}
      for i = 3, #more do candidates[#candidates + 1] = more[i] end
      for _, actor in ipairs(candidates) do
        local known = actor == kept[1]
        for i = 3, #kept do
          if kept[i] == actor then known = true end
        end
        if #kept - 1 < most and not known then
          kept[#kept + 1] = actor
          added = true
        end
      end
      if added then asker = 'asked-by:' .. cjson.encode(kept) end
    end
  end
  local confirmation = new_confirmed or confirmed
  if asker and confirmation then
    key = asker .. '\\n' .. confirmation
  else
    key = asker or confirmation or ''
  end
end
redis.call('HSET', KEYS[1], ARGV[1], key)
return 1
"""

# A web chat client's open conversations (``redis_keys.client_open``, since 2026-12-07). ``client_open_add``, KEYS: the
# record, the client's exact set; ARGV: the SHA-1 of the record the save wrote (saying open), the id: joined only while
# the record is that very one (a write the lock's fence refused, or one another holder wrote over since, adds
# nothing). ``client_count``, KEYS: the client's set (``redis_keys.client``: lists more, never fewer), its exact set
# (lists fewer, never more), the mark of the last reading of the records at the cap; ARGV: the cap, the mark's life
# (ms). Answers {the set's size, the exact set's size when both list the same ids, else -1}: the same ids in both,
# fewer never, more never, so that is the count (no record read); the set shorter than the cap answers alone (-1
# then: below, whatever the exact set says). At the cap, -1 all the same when the mark has lapsed (set again): the
# records are read once a mark's life at most, which drops what a fault left listed in both (a commit held past its
# lease on a Cluster, whose set joined after its refused record; an older instance's crash). Small sets (10, 60).
_CLIENT_OPEN_ADD = """
if redis.sha1hex(redis.call('GET', KEYS[1]) or '') ~= ARGV[1] then return 0 end
return redis.call('SADD', KEYS[2], ARGV[2])
"""
_CLIENT_COUNT = """
local listed = redis.call('SCARD', KEYS[1])
if listed < tonumber(ARGV[1]) or redis.call('SCARD', KEYS[2]) ~= listed then return {listed, -1} end
local ids = redis.call('SMEMBERS', KEYS[2])
for start = 1, #ids, 1000 do
  for _, found in ipairs(redis.call('SMISMEMBER', KEYS[1], unpack(ids, start, math.min(start + 999, #ids)))) do
    if found == 0 then return {listed, -1} end
  end
end
if redis.call('SET', KEYS[3], 1, 'PX', ARGV[2], 'NX') then return {listed, -1} end
return {listed, listed}
"""

SCRIPTS = {
    "advertise_sealing": _ADVERTISE_SEALING,
    "erasure_listed": _ERASURE_LISTED,
    "begin_leaving": _BEGIN_LEAVING,
    "begin_move": _BEGIN_MOVE,
    "end_move": _END_MOVE,
    "moving_hash": _MOVING_HASH,
    "mark_present": _MARK_PRESENT,
    "keep_receipt": _KEEP_RECEIPT,
    "take_receipt": _TAKE_RECEIPT,
    "put_conversation": _PUT_CONVERSATION,
    "client_open_add": _CLIENT_OPEN_ADD,
    "client_count": _CLIENT_COUNT,
    "index_conversation": _INDEX_CONVERSATION,
    "index_of": _INDEX_OF,
    "person_of": _PERSON_OF,
    "claim_active": _CLAIM_ACTIVE,
    "delete_if": _DELETE_IF,
    "replace_if": _REPLACE_IF,
    "claim_replace": _CLAIM_REPLACE,
    "claims_forget": _CLAIMS_FORGET,
    "items_list": _ITEMS_LIST,
    "put_entry": _PUT_ENTRY,
    "get_entry": _GET_ENTRY,
    "entries_written": _ENTRIES_WRITTEN,
    "entry_by_provider": _ENTRY_BY_PROVIDER,
    "set_delivery": _SET_DELIVERY,
    "advance_delivery": _ADVANCE_DELIVERY,
    "advance_part": _ADVANCE_PART,
    "mark_until": _MARK_UNTIL,
    "unread_made": _UNREAD_MADE,
    "set_entry_data": _SET_ENTRY_DATA,
    "claim": _CLAIM,
    "seen_mark": _SEEN_MARK,
    "seen_unmark": _SEEN_UNMARK,
    "release": _RELEASE,
    "enqueue": _ENQUEUE,
    "take_or_requeue": _TAKE_OR_REQUEUE,
    "remove_from_queue": _REMOVE_FROM_QUEUE,
    "put_back": _PUT_BACK,
    "make_holding": _MAKE_HOLDING,
    "position": _POSITION,
    "list_waiting": _LIST_WAITING,
    "update_listener": _UPDATE_LISTENER,
    "audit_once": _AUDIT_ONCE,
    "put_session_index": _PUT_SESSION_INDEX,
    "outbox_put_item": _OUTBOX_PUT_ITEM,
    "put_entry_item": _PUT_ENTRY_ITEM,
    "outbox_list": _OUTBOX_LIST,
    "outbox_due": _OUTBOX_DUE,
    "outbox_claim": _OUTBOX_CLAIM,
    "outbox_line": _OUTBOX_LINE,
    "outbox_renew": _OUTBOX_RENEW,
    "outbox_set_aside": _OUTBOX_SET_ASIDE,
    "outbox_resolve": _OUTBOX_RESOLVE,
    "outbox_sent": _OUTBOX_SENT,
    "outbox_reschedule": _OUTBOX_RESCHEDULE,
    "cancel_timers": _CANCEL_TIMERS,
    "timer_done": _TIMER_DONE,
    "timer_postpone": _TIMER_POSTPONE,
    "late_put": _LATE_PUT,
    "late_hold": _LATE_HOLD,
    "late_claim": _LATE_CLAIM,
    "late_forget": _LATE_FORGET,
    "inbox_put": _INBOX_PUT,
    "inbox_due": _INBOX_DUE,
    "inbox_done": _INBOX_DONE,
    "inbox_retry": _INBOX_RETRY,
    "inbox_set_aside": _INBOX_SET_ASIDE,
    "unlock": _UNLOCK,
    "lock_renew": _LOCK_RENEW,
    "lock_read": _LOCK_READ,
    "hit": _HIT,
    "hit_once": _HIT_ONCE,
}
# the writes of a conversation's slot made under its lock, fenced by it (``_FENCE``): the same scripts with its head
FENCED_SCRIPTS = ("put_conversation", "put_entry", "put_entry_item", "outbox_put_item")
SCRIPTS.update({"fenced_" + name: _FENCE + SCRIPTS[name] for name in FENCED_SCRIPTS})
# an event's publish made under the conversation's lock (``RedisStore.publish``, since 2026-12-07): published only
# while the lock is its holder's, as the entries it tells of are written; KEYS: none of its own; ARGV: the channel,
# the message. Until then a refused commit's events (a plain PUBLISH) told pages and consoles of entries never kept.
SCRIPTS["fenced_publish"] = _FENCE + "return redis.call('PUBLISH', ARGV[1], ARGV[2])\n"
# the fence alone (since 2026-12-07): at the end of a pipeline followed by another under the lock (``_Fence``). Until
# 2026-12-07 also at the head of a split save's writes of other slots on a Cluster, in their pipeline, which ran them
# all the same when it refused (a later change: ``fenced_gate``, sent alone; one node: ``_FENCED_STEPS``)
SCRIPTS["fenced_check"] = _FENCE + "return 1\n"
# The gate of a split save's writes of other slots on a Cluster (``RedisStore.save_conversation``; since 2026-12-07):
# the fence and the record's test of ``_FENCED_STEPS``, sent alone once the record was answered written, the writes
# sent only once it answered 1 (``HeldWrite.gate``): one slot, the conversation's (a Cluster runs no script over the
# writes' slots; until 2026-12-07 ``fenced_check`` headed them in one pipeline, and Redis ran them when it refused: a
# failover that lost the ending took the still-waiting young person out of the queue and freed their address). KEYS:
# the record's key, then the fence's; ARGV: the SHA-1 of the record the save wrote ('' for none), then the fence's.
_FENCED_GATE = (
    "local function fence(KEYS, ARGV)\n"
    + _FENCE
    + "return 1\nend\n"
    + """
local refused = fence(KEYS, ARGV) ~= 1
if refused and (ARGV[1] == '' or redis.sha1hex(redis.call('GET', KEYS[1]) or '') ~= ARGV[1]) then
  return '"""
    + FENCED
    + """'
end
return 1
"""
)
SCRIPTS["fenced_gate"] = _FENCED_GATE


def _step(name: str) -> str:
    """The script ``name`` as a local function of its own KEYS and ARGV (its parameters, which shadow the globals in
    its text): a script made of several calls it with the part of its keys and arguments that step takes."""
    return f"local function {name}(KEYS, ARGV)\n{SCRIPTS[name]}\nend\n"


# The writes of other slots a split save sends after its record (``RedisStore.save_conversation``'s after-part: the
# sets it leaves, an ending's queue entry and sender's address, a web chat's client set, the global processed mark),
# on ONE node only (their keys are in several slots: Sentinel's primary, a standalone Redis), fenced as one step
# (since 2026-12-07). Until then they were commands after the fence alone (``fenced_check``) in one pipeline, and Redis
# runs every command of a pipeline: a failover between the record's pipeline and this one (the new primary without
# the record, the lock's count behind) refused the check and took the still-queued young person out of the queue,
# out of the status's set, and freed their address (their next message opened a second conversation). KEYS: each
# step's keys in order, then the record's key, then the fence's (``_FENCE``). ARGV: the number of steps, then per step
# its name (``index_conversation``, ``remove_from_queue``, ``srem``, ``delete_if``, ``seen_mark``), its keys' and its
# arguments' counts and its arguments; then the SHA-1 of the record the save wrote ('' for none), then the fence's.
# The fence refused, an ending's steps still run when the server holds that very record (the lock lapsed between the
# two pipelines, no failover lost the ending: an ended record is final, its steps are right whoever holds the lock
# now; replication keeps order, so a replica with the record has every write before it); else nothing runs,
# 'fenced'. Answers the last step's answer (the mark's, taken back by the flush when the commit is refused anyway).
_FENCED_STEPS = (
    "local function fence(KEYS, ARGV)\n"
    + _FENCE
    + "return 1\nend\n"
    + "".join(_step(name) for name in ("index_conversation", "remove_from_queue", "delete_if", "seen_mark"))
    + """
local function srem(KEYS, ARGV) return redis.call('SREM', KEYS[1], ARGV[1]) end
local steps = {index_conversation = index_conversation, remove_from_queue = remove_from_queue, srem = srem,
  delete_if = delete_if, seen_mark = seen_mark}
local refused = fence(KEYS, ARGV) ~= 1
local record_key, record_sum = table.remove(KEYS), table.remove(ARGV)
if refused and (record_sum == '' or redis.sha1hex(redis.call('GET', record_key) or '') ~= record_sum) then
  return '"""
    + FENCED
    + """'
end
local k, a, answer = 1, 2, 1
for _ = 1, tonumber(ARGV[1]) do
  local name, nk, na = ARGV[a], tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  local keys, args = {}, {}
  for i = 1, nk do keys[i] = KEYS[k + i - 1] end
  for i = 1, na do args[i] = ARGV[a + 2 + i] end
  k, a = k + nk, a + 3 + na
  answer = steps[name](keys, args)
end
return answer
"""
)
SCRIPTS["fenced_steps"] = _FENCED_STEPS
