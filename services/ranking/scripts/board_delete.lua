-- Remove every key of a board (after common.lua and board.lua).
local keys = ns_keys(LIVE)
for _, k in ipairs(ns_keys(SHADOW)) do keys[#keys + 1] = k end
for _, single in ipairs({'meta', 'hid', 'rb', 'pend'}) do keys[#keys + 1] = B .. ':' .. single end
unlink_all(keys)
return #keys
