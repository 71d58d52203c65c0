//! The write and unlock scripts, and escaping for SCAN patterns.
//!
//! "Newer wins" needs a read-compare-write that no other client can interleave with; a Lua script
//! runs atomically on the server. One call handles a group of keys (every key it touches is in
//! `KEYS`, as Redis requires), so a pipeline of a few calls writes a thousand records without a
//! script invocation per record. Record bytes 1..=16 hold the event and created timestamps in an
//! order-preserving encoding (see [`quiver_core::record`]), so the script compares them without
//! decoding the payload. It compares with `string.byte` rather than Lua's `<` on strings: Redis
//! sets the process locale, and Lua string comparison uses `strcoll`, which need not be bytewise.

/// `KEYS[i]`: record keys. `ARGV[1]`: TTL in ms, `0` for none. `ARGV[i + 1]`: the new record of
/// `KEYS[i]`. Each record is stored unless the stored one is newer; returns how many were stored.
pub(super) const WRITE_IF_NOT_OLDER: &str = r#"
local ttl = tonumber(ARGV[1])
local stored = 0
for i = 1, #KEYS do
  local new = ARGV[i + 1]
  local old = redis.call('GET', KEYS[i])
  local write = true
  if old and #old >= 17 and #new >= 17 then
    for j = 2, 17 do
      local a, b = string.byte(new, j), string.byte(old, j)
      if a ~= b then
        if a < b then write = false end
        break
      end
    end
  end
  if write then
    if ttl and ttl > 0 then
      redis.call('SET', KEYS[i], new, 'PX', ttl)
    else
      redis.call('SET', KEYS[i], new)
    end
    stored = stored + 1
  end
end
return stored
"#;

/// `KEYS[1]`: a lock key. `ARGV[1]`: the caller's token. Deletes the key only if it holds that
/// token, and returns how many keys it deleted (1 or 0). GET then DEL from the client could
/// delete a lock that expired and was taken by someone else in between; a script cannot.
pub(super) const UNLOCK_IF_OWNER: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
    return redis.call('DEL', KEYS[1]) else return 0 end";

/// `KEYS[1]`: a lock key. `ARGV[1]`: the caller's token, `ARGV[2]`: the new lease in ms. Renews
/// the lease only if the key holds that token; returns 1 if it did, 0 otherwise.
pub(super) const EXTEND_IF_OWNER: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
    return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end";

/// Escapes Redis glob metacharacters so `text` matches itself literally in `SCAN MATCH`.
pub(super) fn escape_glob(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\' | '^') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_glob_characters() {
        assert_eq!(escape_glob("quiver:shop:v1:"), "quiver:shop:v1:");
        assert_eq!(escape_glob("a*b?[c]\\^"), "a\\*b\\?\\[c\\]\\\\\\^");
    }
}
