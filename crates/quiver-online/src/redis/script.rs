//! The write script, and escaping for SCAN patterns.
//!
//! "Newer wins" needs a read-compare-write that no other client can interleave with; a Lua script
//! runs atomically on the server, and touching only `KEYS[1]` keeps it valid in Redis Cluster
//! (one slot per call). Record bytes 1..=16 hold the event and created timestamps in an
//! order-preserving encoding (see [`quiver_core::record`]), so the script compares them without
//! decoding the payload. It compares with `string.byte` rather than Lua's `<` on strings: Redis
//! sets the process locale, and Lua string comparison uses `strcoll`, which need not be bytewise.

/// `KEYS[1]`: the record key. `ARGV[1]`: the new record. `ARGV[2]`: TTL in ms, `0` for none.
/// Returns 1 if the record was stored, 0 if the stored one is newer.
pub(super) const WRITE_IF_NOT_OLDER: &str = r#"
local new = ARGV[1]
local old = redis.call('GET', KEYS[1])
if old and #old >= 17 and #new >= 17 then
  for i = 2, 17 do
    local a, b = string.byte(new, i), string.byte(old, i)
    if a ~= b then
      if a < b then return 0 end
      break
    end
  end
end
local ttl = tonumber(ARGV[2])
if ttl and ttl > 0 then
  redis.call('SET', KEYS[1], new, 'PX', ttl)
else
  redis.call('SET', KEYS[1], new)
end
return 1
"#;

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
