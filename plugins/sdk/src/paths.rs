//! Project-relative path rules, shared by the std `path` gate and any gate
//! that judges paths.
//!
//! A task names paths relative to the project root with `/` separators. Only
//! [`check`] decides whether such a path is acceptable at all; [`within`] and
//! [`overlap`] compare paths that passed it.
//!
//! ```
//! use omk_gate_sdk::paths::{self, Violation};
//! assert_eq!(paths::check("./src//lib.rs").unwrap(), "src/lib.rs");
//! assert_eq!(paths::check("../etc/passwd"), Err(Violation::ParentDir));
//! assert!(paths::within("src/lib.rs", "src"));
//! assert!(!paths::within("srcx/lib.rs", "src"));
//! ```

/// Longest path accepted, in bytes (Linux's `PATH_MAX`).
pub const MAX_PATH_BYTES: usize = 4096;
/// Longest path component accepted, in bytes (Linux's `NAME_MAX`).
pub const MAX_COMPONENT_BYTES: usize = 255;

/// Why a path is not an acceptable project-relative path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Violation {
    /// Empty, or only whitespace.
    Empty,
    /// Has a component that is only whitespace (`src/  /x`), which names a
    /// file no one can see in a listing.
    Blank,
    /// Starts at a filesystem root (`/x`), a drive (`C:`), or a UNC share.
    Absolute,
    /// Has a `..` component.
    ParentDir,
    /// Starts with `~` (a home directory).
    Home,
    /// Holds a control character (NUL, newline, DEL, C1 controls, …).
    ControlChar,
    /// Holds a backslash, which is a separator on Windows.
    Backslash,
    /// Has a component starting with `.git` (any case): repository
    /// internals and git configuration (`.git`, `.gitmodules`, `.github`).
    Git,
    /// Longer than [`MAX_PATH_BYTES`] or with a component longer than
    /// [`MAX_COMPONENT_BYTES`].
    TooLong,
}

impl Violation {
    /// The rule's stable name, used in rejection codes (`path.<rule>`).
    pub fn rule(self) -> &'static str {
        match self {
            Violation::Empty => "empty",
            Violation::Blank => "blank",
            Violation::Absolute => "absolute",
            Violation::ParentDir => "parent-dir",
            Violation::Home => "home",
            Violation::ControlChar => "control-char",
            Violation::Backslash => "backslash",
            Violation::Git => "git",
            Violation::TooLong => "too-long",
        }
    }

    /// What is wrong, for people.
    pub fn describe(self) -> &'static str {
        match self {
            Violation::Empty => "the path is empty",
            Violation::Blank => "a path component is only whitespace",
            Violation::Absolute => "absolute paths are not allowed",
            Violation::ParentDir => "`..` components are not allowed",
            Violation::Home => "paths starting with `~` are not allowed",
            Violation::ControlChar => "control characters are not allowed",
            Violation::Backslash => "backslashes are not allowed; use `/`",
            Violation::Git => "`.git*` files and directories are off limits",
            Violation::TooLong => "the path is too long",
        }
    }

    /// Whether the violation is an attempt to leave the project tree, as
    /// opposed to a malformed or forbidden name inside it.
    pub fn escapes_project(self) -> bool {
        matches!(
            self,
            Violation::Absolute | Violation::ParentDir | Violation::Home
        )
    }
}

/// Checks a project-relative path and returns its normal form: `./` and
/// empty components removed, no trailing `/`. The project root itself (`.`)
/// normalises to `"."`.
pub fn check(path: &str) -> Result<String, Violation> {
    if path.trim().is_empty() {
        return Err(Violation::Empty);
    }
    if path.len() > MAX_PATH_BYTES {
        return Err(Violation::TooLong);
    }
    if path.chars().any(char::is_control) {
        return Err(Violation::ControlChar);
    }
    if path.starts_with('/') {
        return Err(Violation::Absolute);
    }
    if path.contains('\\') {
        return Err(if path.starts_with("\\\\") {
            Violation::Absolute
        } else {
            Violation::Backslash
        });
    }
    if has_drive_prefix(path) {
        return Err(Violation::Absolute);
    }
    if path.starts_with('~') {
        return Err(Violation::Home);
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => continue,
            ".." => return Err(Violation::ParentDir),
            _ => {}
        }
        if part.len() > MAX_COMPONENT_BYTES {
            return Err(Violation::TooLong);
        }
        if part.trim().is_empty() {
            return Err(Violation::Blank);
        }
        if is_git_name(part) {
            return Err(Violation::Git);
        }
        parts.push(part);
    }
    // `./~x` and `./C:/x` name what `~x` and `C:/x` name: judge the normal
    // form's start too.
    if let Some(first) = parts.first() {
        if has_drive_prefix(first) {
            return Err(Violation::Absolute);
        }
        if first.starts_with('~') {
            return Err(Violation::Home);
        }
    }
    if parts.is_empty() {
        // Only `.` and `/`: the project root, unless it was something like
        // `//`, which `starts_with('/')` already refused.
        return Ok(".".to_owned());
    }
    Ok(parts.join("/"))
}

/// `C:`, `c:foo`, `C:/x`: a Windows drive, absolute or drive-relative.
fn has_drive_prefix(path: &str) -> bool {
    let b = path.as_bytes();
    b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':'
}

/// `.git`, `.GIT`, `.gitignore`, `.github`, … — also with trailing dots or
/// spaces, which some filesystems drop (`.git.`, `.git `).
fn is_git_name(part: &str) -> bool {
    let trimmed = part.trim_end_matches(['.', ' ']);
    trimmed
        .get(..4)
        .is_some_and(|head| head.eq_ignore_ascii_case(".git"))
}

/// Whether normalised `path` is `root` or lies below it. `"."` is the whole
/// project.
pub fn within(path: &str, root: &str) -> bool {
    if root == "." {
        return true;
    }
    path == root
        || path
            .strip_prefix(root)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Whether two normalised paths name overlapping parts of the tree (one is
/// the other or lies below it).
pub fn overlap(a: &str, b: &str) -> bool {
    within(a, b) || within(b, a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises() {
        assert_eq!(check("README.md").unwrap(), "README.md");
        assert_eq!(check("./src/./lib.rs").unwrap(), "src/lib.rs");
        // Found by the fuzzer: a `~` after `./` is still a home directory.
        assert_eq!(check("./~8a]/"), Err(Violation::Home));
        assert_eq!(check(".//~/x"), Err(Violation::Home));
        assert_eq!(check("src/~backup").unwrap(), "src/~backup");
        assert_eq!(check("./a:l/b"), Err(Violation::Absolute));
        assert_eq!(check("src/a:b").unwrap(), "src/a:b");
        assert_eq!(check("src//").unwrap(), "src");
        assert_eq!(check(".").unwrap(), ".");
        assert_eq!(check("./").unwrap(), ".");
        assert_eq!(check("a/.../b").unwrap(), "a/.../b");
        assert_eq!(check("my.gitlike/x").unwrap(), "my.gitlike/x");
    }

    #[test]
    fn refuses_each_rule() {
        let cases = [
            ("", Violation::Empty),
            ("   ", Violation::Empty),
            ("\u{a0}\u{3000}", Violation::Empty),
            ("src/  /x", Violation::Blank),
            (" /x", Violation::Blank),
            ("src/\u{2003}", Violation::Blank),
            ("/etc/passwd", Violation::Absolute),
            ("//server/share", Violation::Absolute),
            ("\\\\server\\share", Violation::Absolute),
            ("C:\\x", Violation::Backslash),
            ("C:/x", Violation::Absolute),
            ("c:x", Violation::Absolute),
            ("..", Violation::ParentDir),
            ("../x", Violation::ParentDir),
            ("a/../../x", Violation::ParentDir),
            ("a/..", Violation::ParentDir),
            ("~/x", Violation::Home),
            ("~root", Violation::Home),
            ("a\0b", Violation::ControlChar),
            ("a\nb", Violation::ControlChar),
            ("a\u{7f}", Violation::ControlChar),
            ("a\u{85}", Violation::ControlChar),
            ("a\\b", Violation::Backslash),
            (".git", Violation::Git),
            ("./.git/config", Violation::Git),
            (".GIT/HEAD", Violation::Git),
            ("sub/.git", Violation::Git),
            (".gitmodules", Violation::Git),
            (".github/workflows/ci.yml", Violation::Git),
            (".git./x", Violation::Git),
            (".git /x", Violation::Git),
        ];
        for (path, want) in cases {
            assert_eq!(check(path), Err(want), "{path:?}");
        }
        assert_eq!(check(&"a".repeat(5000)), Err(Violation::TooLong));
        assert_eq!(check(&"a".repeat(300)), Err(Violation::TooLong));
    }

    #[test]
    fn within_and_overlap() {
        assert!(within("src/a.rs", "src"));
        assert!(within("src", "src"));
        assert!(!within("srcx", "src"));
        assert!(!within("src", "src/a.rs"));
        assert!(within("anything", "."));
        assert!(overlap("src", "src/a.rs"));
        assert!(overlap("src/a.rs", "src"));
        assert!(!overlap("src/a.rs", "src/b.rs"));
    }
}
