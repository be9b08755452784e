//! Znode path rules (`PathUtils.validatePath`) and small path helpers.
//!
//! ZooKeeper checks paths on UTF-16 code units; every char outside the Basic Multilingual
//! Plane is a surrogate pair there and therefore illegal, which the char ranges below
//! reproduce for Rust strings. Lengths that ZooKeeper reports (`approximate_data_size`)
//! are UTF-16 units too: see [`utf16_len`].

use corral_proto::ErrorCode;

/// The root.
pub const ROOT: &str = "/";
/// ZooKeeper's own subtree.
pub const ZOOKEEPER: &str = "/zookeeper";
/// Quota definitions live under here.
pub const QUOTA: &str = "/zookeeper/quota";
/// The dynamic configuration node (world:READ, written only by reconfig).
pub const CONFIG: &str = "/zookeeper/config";
/// Nodes below this prefix are excluded from the tree digest.
pub const ZOOKEEPER_SUBTREE_PREFIX: &str = "/zookeeper/";

/// The nodes that cannot be deleted (BadArguments).
pub fn is_special(path: &str) -> bool {
    matches!(path, ROOT | ZOOKEEPER | QUOTA | CONFIG)
}

/// Is `c` a character ZooKeeper refuses in a path (besides `/` placement rules)?
fn illegal_char(c: char) -> bool {
    let u = c as u32;
    u == 0
        || (0x01..=0x1f).contains(&u)
        || (0x7f..=0x9f).contains(&u)
        // U+D800..U+DFFF cannot occur in a Rust string; U+E000..U+F8FF is private use.
        || (0xd800..=0xf8ff).contains(&u)
        || (0xfff0..=0xffff).contains(&u)
        // Outside the BMP: a surrogate pair in Java, hence illegal.
        || u > 0xffff
}

/// `PathUtils.validatePath`: absolute, no trailing `/` (except the root), no empty, `.` or
/// `..` component, no illegal character. Violations are BadArguments (-8).
pub fn validate_path(path: &str) -> Result<(), ErrorCode> {
    let rest = path.strip_prefix('/').ok_or(ErrorCode::BadArguments)?;
    if rest.is_empty() {
        return Ok(());
    }
    for component in rest.split('/') {
        if component.is_empty() || component == "." || component == ".." {
            return Err(ErrorCode::BadArguments);
        }
        if component.chars().any(illegal_char) {
            return Err(ErrorCode::BadArguments);
        }
    }
    Ok(())
}

/// Splits at the last `/`: `("/a", "b")` for `/a/b`, `("", "a")` for `/a`. `None` if there
/// is no `/` at all. The parent of a top-level node is `""`, ZooKeeper's alias of the root.
pub fn split_last(path: &str) -> Option<(&str, &str)> {
    let i = path.rfind('/')?;
    Some((&path[..i], &path[i + 1..]))
}

/// The path ZooKeeper uses for watches and events on a parent: `""` becomes `/`.
pub fn event_parent(parent: &str) -> &str {
    if parent.is_empty() {
        ROOT
    } else {
        parent
    }
}

/// Joins a parent path and a child name (`/` + `a` = `/a`).
pub fn join(parent: &str, name: &str) -> String {
    let mut s = String::with_capacity(parent.len() + 1 + name.len());
    if parent != ROOT {
        s.push_str(parent);
    }
    s.push('/');
    s.push_str(name);
    s
}

/// Length in UTF-16 code units, as Java's `String.length()` counts it.
pub fn utf16_len(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

/// Java's `String.trim()`: strips chars <= U+0020 at both ends.
pub fn java_trim(s: &str) -> &str {
    s.trim_matches(|c: char| c <= ' ')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(p: &str) -> bool {
        validate_path(p).is_ok()
    }

    #[test]
    fn validation_matches_pathutils() {
        for good in [
            "/", "/a", "/a/b", "/a/.b", "/a/..b", "/a/b.", "/a/...", "/a/é", "/ a", "/a/ ",
            "/\u{a0}",
        ] {
            assert!(ok(good), "{good:?} should be valid");
        }
        for bad in [
            "",
            "a",
            "a/b",
            "/a/",
            "//",
            "/a//b",
            "/.",
            "/..",
            "/a/.",
            "/a/..",
            "/a/./b",
            "/a/../b",
            "/a\0",
            "/a\u{1}",
            "/a\u{1f}",
            "/a\u{7f}",
            "/a\u{9f}",
            "/a\u{e000}",
            "/a\u{f8ff}",
            "/a\u{fff0}",
            "/a\u{fffd}",
            "/a\u{ffff}",
            "/a\u{1f600}",
        ] {
            assert!(!ok(bad), "{bad:?} should be invalid");
        }
        assert!(ok("/a\u{20}"));
        assert!(ok("/a\u{a0}"));
        assert!(ok("/a\u{f900}"));
        assert!(ok("/a\u{ffef}"));
    }

    #[test]
    fn helpers() {
        assert_eq!(split_last("/a/b"), Some(("/a", "b")));
        assert_eq!(split_last("/a"), Some(("", "a")));
        assert_eq!(split_last("/"), Some(("", "")));
        assert_eq!(split_last("abc"), None);
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a", "b"), "/a/b");
        assert_eq!(event_parent(""), "/");
        assert_eq!(utf16_len("/a/é"), 4);
        assert!(is_special("/zookeeper/config"));
        assert!(!is_special("/zookeeper/x"));
        assert_eq!(java_trim(" \t/ \n"), "/");
    }
}
