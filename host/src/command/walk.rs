//! From brush-parser's syntax tree to the flat list of simple commands a
//! gate sees: words after quote removal, redirections, joins, nesting,
//! directories, and wrappers unwrapped.

use brush_parser::ast;
use brush_parser::word::{self, WordPiece, WordPieceWithSource};
use omk_gate_sdk::{
    Joined, Nesting, ParseStatus, ParsedCommand, RedirectOp, Redirection, SimpleCommand,
};

use super::{MAX_DEPTH, wrappers};

/// Parses `line`, `depth` wrappers deep.
pub(super) fn parse(line: &str, depth: usize) -> ParsedCommand {
    let options = brush_parser::ParserOptions::default();
    let program = match brush_parser::Parser::new(line.as_bytes(), &options).parse_program() {
        Ok(p) => p,
        Err(e) => return super::unparsed(format!("not a command line bash reads: {e}")),
    };
    let mut w = Walker {
        options,
        commands: Vec::new(),
        notes: Vec::new(),
        depth,
    };
    let mut dir = Dir::start();
    for list in &program.complete_commands {
        w.list(list, &[], &mut dir, &[]);
    }
    let status = if w.notes.is_empty() {
        ParseStatus::Parsed
    } else {
        ParseStatus::Partial
    };
    w.notes.dedup();
    ParsedCommand {
        status,
        notes: w.notes,
        commands: w.commands,
    }
}

/// The directory a command runs in, as far as literal `cd`s tell.
#[derive(Debug, Clone)]
struct Dir(Option<String>);

impl Dir {
    fn start() -> Dir {
        Dir(Some(".".into()))
    }

    fn shown(&self) -> String {
        self.0.clone().unwrap_or_default()
    }

    /// After `cd` with `args` (quote-removed, `dynamic` when not literal).
    fn cd(&mut self, args: &[String], dynamic: bool) {
        let args: Vec<&String> = args
            .iter()
            .filter(|a| !a.starts_with('-') || *a == "-")
            .collect();
        self.0 = match (args.first(), dynamic) {
            (_, true) => None,
            (None, false) => Some("~".into()),
            (Some(a), false) if a.as_str() == "-" => None,
            (Some(a), false) if a.starts_with('/') || a.starts_with('~') => Some(join(".", a)),
            (Some(a), false) => self.0.as_ref().map(|from| join(from, a)),
        };
    }
}

/// `to` resolved against `from` lexically (`a` + `../b` = `b`); an
/// absolute or `~` path starts over.
pub(super) fn join(from: &str, to: &str) -> String {
    let home = |p: &str| -> (String, String) {
        let (h, r) = p.split_once('/').unwrap_or((p, ""));
        (format!("{h}/"), r.to_owned())
    };
    let (root, base, rest) = if let Some(r) = to.strip_prefix('/') {
        ("/".to_owned(), String::new(), r.to_owned())
    } else if to.starts_with('~') {
        let (root, r) = home(to);
        (root, String::new(), r)
    } else if let Some(r) = from.strip_prefix('/') {
        ("/".to_owned(), r.to_owned(), to.to_owned())
    } else if from.starts_with('~') {
        let (root, r) = home(from);
        (root, r, to.to_owned())
    } else {
        (String::new(), from.to_owned(), to.to_owned())
    };
    let mut parts: Vec<&str> = Vec::new();
    for p in base.split('/').chain(rest.split('/')) {
        match p {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if root.is_empty() {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    match (root.is_empty(), joined.is_empty()) {
        (true, true) => ".".into(),
        (true, false) => joined,
        (false, true) if root == "/" => root,
        (false, true) => root.trim_end_matches('/').to_owned(),
        (false, false) => format!("{root}{joined}"),
    }
}

/// A word after quote removal: its text, and whether it is known only
/// when the command runs (then the text is the word as written).
struct Expanded {
    text: String,
    dynamic: bool,
}

struct Walker {
    options: brush_parser::ParserOptions,
    commands: Vec<SimpleCommand>,
    notes: Vec<String>,
    depth: usize,
}

impl Walker {
    fn note(&mut self, n: String) {
        if !self.notes.contains(&n) {
            self.notes.push(n);
        }
    }

    /// A list of and-or lists (`a; b && c | d &`).
    fn list(
        &mut self,
        list: &ast::CompoundList,
        nesting: &[Nesting],
        dir: &mut Dir,
        inherited: &[Redirection],
    ) {
        for (i, item) in list.0.iter().enumerate() {
            let ast::CompoundListItem(and_or, sep) = item;
            let background = matches!(sep, ast::SeparatorOperator::Async);
            let first = if i == 0 { Joined::First } else { Joined::Then };
            let mut pipeline = Vec::with_capacity(1 + and_or.additional.len());
            pipeline.push((first, &and_or.first));
            for next in &and_or.additional {
                match next {
                    ast::AndOr::And(p) => pipeline.push((Joined::And, p)),
                    ast::AndOr::Or(p) => pipeline.push((Joined::Or, p)),
                }
            }
            for (joined, p) in pipeline {
                let alone = p.seq.len() == 1;
                for (k, cmd) in p.seq.iter().enumerate() {
                    let joined = if k == 0 { joined } else { Joined::Pipe };
                    // Each part of a longer pipeline runs in a subshell of
                    // its own: its `cd` changes nothing after it.
                    let mut own = dir.clone();
                    let d = if alone && !background {
                        &mut *dir
                    } else {
                        &mut own
                    };
                    self.command(cmd, joined, background, nesting, d, inherited);
                }
            }
        }
    }

    fn command(
        &mut self,
        cmd: &ast::Command,
        joined: Joined,
        background: bool,
        nesting: &[Nesting],
        dir: &mut Dir,
        inherited: &[Redirection],
    ) {
        match cmd {
            ast::Command::Simple(s) => self.simple(s, joined, background, nesting, dir, inherited),
            ast::Command::Compound(c, redirects) => {
                let mut all = inherited.to_vec();
                if let Some(r) = redirects {
                    for io in &r.0 {
                        all.push(self.redirect(io, nesting, dir));
                    }
                }
                self.compound(c, joined, background, nesting, dir, &all);
            }
            ast::Command::Function(f) => {
                let mut inner = nesting.to_vec();
                inner.push(Nesting::Function);
                let mut all = inherited.to_vec();
                if let Some(r) = &f.body.1 {
                    for io in &r.0 {
                        all.push(self.redirect(io, nesting, dir));
                    }
                }
                let mut own = dir.clone();
                self.compound(&f.body.0, Joined::First, false, &inner, &mut own, &all);
            }
            ast::Command::ExtendedTest(t, redirects) => {
                let mut inner = nesting.to_vec();
                inner.push(Nesting::Compound);
                let mut words = vec!["[[".to_owned()];
                let mut dynamic = Vec::new();
                self.test_words(&t.expr, &inner, dir, &mut words, &mut dynamic);
                words.push("]]".into());
                let mut redirections = inherited.to_vec();
                if let Some(r) = redirects {
                    for io in &r.0 {
                        redirections.push(self.redirect(io, nesting, dir));
                    }
                }
                self.commands.push(SimpleCommand {
                    words,
                    dynamic,
                    assignments: Vec::new(),
                    redirections,
                    joined,
                    background,
                    nesting: nesting.to_vec(),
                    directory: dir.shown(),
                });
            }
        }
    }

    fn test_words(
        &mut self,
        e: &ast::ExtendedTestExpr,
        nesting: &[Nesting],
        dir: &Dir,
        words: &mut Vec<String>,
        dynamic: &mut Vec<u32>,
    ) {
        use ast::ExtendedTestExpr as T;
        match e {
            T::And(a, b) | T::Or(a, b) => {
                self.test_words(a, nesting, dir, words, dynamic);
                self.test_words(b, nesting, dir, words, dynamic);
            }
            T::Not(a) | T::Parenthesized(a) => self.test_words(a, nesting, dir, words, dynamic),
            T::UnaryTest(_, w) => self.push_word(w, nesting, dir, words, dynamic),
            T::BinaryTest(_, a, b) => {
                self.push_word(a, nesting, dir, words, dynamic);
                self.push_word(b, nesting, dir, words, dynamic);
            }
        }
    }

    fn push_word(
        &mut self,
        w: &ast::Word,
        nesting: &[Nesting],
        dir: &Dir,
        words: &mut Vec<String>,
        dynamic: &mut Vec<u32>,
    ) {
        let e = self.word(&w.value, nesting, dir);
        if e.dynamic {
            dynamic.push(u32::try_from(words.len()).unwrap_or(u32::MAX));
        }
        words.push(e.text);
    }

    fn compound(
        &mut self,
        c: &ast::CompoundCommand,
        joined: Joined,
        background: bool,
        nesting: &[Nesting],
        dir: &mut Dir,
        inherited: &[Redirection],
    ) {
        let with = |n: Nesting| {
            let mut v = nesting.to_vec();
            v.push(n);
            v
        };
        // The first command inside keeps the compound's join; the rest are
        // joined as their list says.
        let _ = (joined, background);
        match c {
            ast::CompoundCommand::Subshell(s) => {
                let mut own = dir.clone();
                self.list(&s.list, &with(Nesting::Subshell), &mut own, inherited);
            }
            ast::CompoundCommand::BraceGroup(b) => {
                self.list(&b.list, &with(Nesting::Group), dir, inherited);
            }
            ast::CompoundCommand::IfClause(i) => {
                let inner = with(Nesting::Compound);
                self.list(&i.condition, &inner, dir, inherited);
                self.list(&i.then, &inner, dir, inherited);
                for e in i.elses.iter().flatten() {
                    if let Some(c) = &e.condition {
                        self.list(c, &inner, dir, inherited);
                    }
                    self.list(&e.body, &inner, dir, inherited);
                }
            }
            ast::CompoundCommand::WhileClause(w) | ast::CompoundCommand::UntilClause(w) => {
                let inner = with(Nesting::Compound);
                self.list(&w.0, &inner, dir, inherited);
                self.list(&w.1.list, &inner, dir, inherited);
            }
            ast::CompoundCommand::ForClause(f) => {
                let inner = with(Nesting::Compound);
                for v in f.values.iter().flatten() {
                    // Substitutions in the values run; the values themselves
                    // are only data.
                    let _ = self.word(&v.value, &inner, dir);
                }
                self.list(&f.body.list, &inner, dir, inherited);
            }
            ast::CompoundCommand::ArithmeticForClause(f) => {
                self.list(&f.body.list, &with(Nesting::Compound), dir, inherited);
            }
            ast::CompoundCommand::CaseClause(c) => {
                let inner = with(Nesting::Compound);
                let _ = self.word(&c.value.value, &inner, dir);
                for item in &c.cases {
                    if let Some(cmd) = &item.cmd {
                        self.list(cmd, &inner, dir, inherited);
                    }
                }
            }
            ast::CompoundCommand::Arithmetic(_) => {}
            ast::CompoundCommand::Coprocess(c) => {
                let mut own = dir.clone();
                self.command(
                    &c.body,
                    Joined::First,
                    true,
                    &with(Nesting::Subshell),
                    &mut own,
                    inherited,
                );
            }
        }
    }

    fn simple(
        &mut self,
        s: &ast::SimpleCommand,
        joined: Joined,
        background: bool,
        nesting: &[Nesting],
        dir: &mut Dir,
        inherited: &[Redirection],
    ) {
        let mut words: Vec<String> = Vec::new();
        let mut dynamic: Vec<u32> = Vec::new();
        let mut assignments = Vec::new();
        let mut redirections = inherited.to_vec();
        let items = s
            .prefix
            .iter()
            .flat_map(|p| p.0.iter())
            .map(Item::Prefix)
            .chain(s.word_or_name.iter().map(Item::Name))
            .chain(s.suffix.iter().flat_map(|p| p.0.iter()).map(Item::Suffix));
        for item in items {
            match item {
                Item::Name(w) => self.push_word(w, nesting, dir, &mut words, &mut dynamic),
                Item::Prefix(i) | Item::Suffix(i) => match i {
                    ast::CommandPrefixOrSuffixItem::Word(w) => {
                        self.push_word(w, nesting, dir, &mut words, &mut dynamic)
                    }
                    ast::CommandPrefixOrSuffixItem::IoRedirect(io) => {
                        redirections.push(self.redirect(io, nesting, dir))
                    }
                    ast::CommandPrefixOrSuffixItem::AssignmentWord(a, w) => {
                        let shown = self.assignment(a, w, nesting, dir);
                        // Before the name: an assignment; after it (`export
                        // X=1`, `declare`), an argument.
                        if words.is_empty() {
                            assignments.push(shown);
                        } else {
                            words.push(shown);
                        }
                    }
                    ast::CommandPrefixOrSuffixItem::ProcessSubstitution(_, sub) => {
                        let mut inner = nesting.to_vec();
                        inner.push(Nesting::ProcessSubstitution);
                        let mut own = dir.clone();
                        self.list(&sub.list, &inner, &mut own, &[]);
                        dynamic.push(u32::try_from(words.len()).unwrap_or(u32::MAX));
                        words.push(format!("<({})", sub.list));
                    }
                },
            }
        }
        let command = SimpleCommand {
            words,
            dynamic,
            assignments,
            redirections,
            joined,
            background,
            nesting: nesting.to_vec(),
            directory: dir.shown(),
        };
        self.known_name(&command);
        let unwrapped = wrappers::inner(&command);
        // `cd` (and `pushd`, `popd`) moves the commands after it.
        match command.name() {
            Some("cd" | "pushd") if !command.is_dynamic(0) => {
                let dynamic = (1..command.words.len()).any(|i| command.is_dynamic(i));
                dir.cd(&command.words[1..], dynamic);
            }
            Some("popd") => dir.0 = None,
            _ => {}
        }
        let directory = command.directory.clone();
        self.commands.push(command);
        self.unwrap(unwrapped, nesting, &directory);
    }

    /// Notes a command whose name is known only when it runs, or that runs
    /// text or a file this parse cannot see.
    fn known_name(&mut self, c: &SimpleCommand) {
        let Some(name) = c.name() else { return };
        if c.is_dynamic(0) {
            self.note(format!(
                "the command name `{name}` is known only when it runs"
            ));
            return;
        }
        // `source FILE` runs a file, as `bash FILE` and `make` do: known.
        if name == "eval" && (1..c.words.len()).any(|i| c.is_dynamic(i)) {
            self.note("`eval` runs text put together when it runs".into());
        }
    }

    /// Adds the command a wrapper runs, or notes why it cannot.
    fn unwrap(&mut self, inner: wrappers::Inner, nesting: &[Nesting], directory: &str) {
        let mut within = nesting.to_vec();
        within.push(Nesting::Wrapper);
        let too_deep = || format!("wrappers nest more than {MAX_DEPTH} deep");
        match inner {
            wrappers::Inner::None => {}
            wrappers::Inner::Dynamic(why) => self.note(why),
            wrappers::Inner::Command(mut c) => {
                if self.depth + 1 > MAX_DEPTH {
                    self.note(too_deep());
                    return;
                }
                c.nesting = within.clone();
                c.joined = Joined::First;
                c.directory = directory.to_owned();
                self.known_name(&c);
                let again = wrappers::inner(&c);
                self.commands.push(c);
                self.depth += 1;
                self.unwrap(again, &within, directory);
                self.depth -= 1;
            }
            wrappers::Inner::Text(text) => {
                if self.depth + 1 > MAX_DEPTH {
                    self.note(too_deep());
                    return;
                }
                let inner = parse(&text, self.depth + 1);
                match inner.status {
                    ParseStatus::Unparsed => self.note(format!(
                        "the text a wrapper runs is not a command line bash reads: {}",
                        inner.notes.join("; ")
                    )),
                    _ => {
                        for n in inner.notes {
                            self.note(n);
                        }
                    }
                }
                for mut c in inner.commands {
                    let mut n = within.clone();
                    n.extend(c.nesting);
                    c.nesting = n;
                    if c.directory == "." || c.directory.is_empty() {
                        c.directory = if c.directory.is_empty() {
                            String::new()
                        } else {
                            directory.to_owned()
                        };
                    } else if !directory.is_empty() && directory != "." {
                        c.directory = join(directory, &c.directory);
                    }
                    self.commands.push(c);
                }
            }
        }
    }

    fn assignment(
        &mut self,
        a: &ast::Assignment,
        w: &ast::Word,
        nesting: &[Nesting],
        dir: &Dir,
    ) -> String {
        let name = match &a.name {
            ast::AssignmentName::VariableName(n) => n.clone(),
            ast::AssignmentName::ArrayElementName(n, i) => format!("{n}[{i}]"),
        };
        let op = if a.append { "+=" } else { "=" };
        match &a.value {
            ast::AssignmentValue::Scalar(v) => {
                let e = self.word(&v.value, nesting, dir);
                format!("{name}{op}{}", e.text)
            }
            ast::AssignmentValue::Array(_) => {
                // Substitutions inside still run.
                let _ = self.word(&w.value, nesting, dir);
                w.value.clone()
            }
        }
    }

    fn redirect(&mut self, io: &ast::IoRedirect, nesting: &[Nesting], dir: &Dir) -> Redirection {
        let fd = |f: &Option<ast::IoFd>| f.and_then(|f| u32::try_from(f).ok());
        match io {
            ast::IoRedirect::File(f, kind, target) => {
                let op = match kind {
                    ast::IoFileRedirectKind::Read => RedirectOp::Read,
                    ast::IoFileRedirectKind::Write => RedirectOp::Write,
                    ast::IoFileRedirectKind::Append => RedirectOp::Append,
                    ast::IoFileRedirectKind::ReadAndWrite => RedirectOp::ReadWrite,
                    ast::IoFileRedirectKind::Clobber => RedirectOp::Clobber,
                    ast::IoFileRedirectKind::DuplicateInput
                    | ast::IoFileRedirectKind::DuplicateOutput => RedirectOp::Duplicate,
                };
                match target {
                    ast::IoFileRedirectTarget::Filename(w) => {
                        let e = self.word(&w.value, nesting, dir);
                        // `>& file` (no descriptor) writes both outputs.
                        let op = if op == RedirectOp::Duplicate
                            && !e.dynamic
                            && !e.text.chars().all(|c| c.is_ascii_digit() || c == '-')
                        {
                            RedirectOp::WriteBoth
                        } else {
                            op
                        };
                        Redirection {
                            fd: fd(f),
                            op,
                            target: e.text,
                            dynamic: e.dynamic,
                        }
                    }
                    ast::IoFileRedirectTarget::Fd(n) => Redirection {
                        fd: fd(f),
                        op: RedirectOp::Duplicate,
                        target: n.to_string(),
                        dynamic: false,
                    },
                    ast::IoFileRedirectTarget::Duplicate(w) => {
                        let e = self.word(&w.value, nesting, dir);
                        Redirection {
                            fd: fd(f),
                            op: RedirectOp::Duplicate,
                            target: e.text,
                            dynamic: e.dynamic,
                        }
                    }
                    ast::IoFileRedirectTarget::ProcessSubstitution(_, sub) => {
                        let mut inner = nesting.to_vec();
                        inner.push(Nesting::ProcessSubstitution);
                        let mut own = dir.clone();
                        self.list(&sub.list, &inner, &mut own, &[]);
                        Redirection {
                            fd: fd(f),
                            op: RedirectOp::Process,
                            target: format!("{}", sub.list),
                            dynamic: true,
                        }
                    }
                }
            }
            ast::IoRedirect::HereDocument(f, doc) => {
                let body = &doc.doc.value;
                let dynamic = doc.requires_expansion && body.contains(['$', '`']);
                if dynamic {
                    // Substitutions in an unquoted here-document run.
                    if let Ok(pieces) = word::parse_heredoc(body, &self.options) {
                        self.pieces(&pieces, nesting, dir, &mut String::new(), true);
                    }
                }
                Redirection {
                    fd: fd(f),
                    op: RedirectOp::Heredoc,
                    target: body.clone(),
                    dynamic,
                }
            }
            ast::IoRedirect::HereString(f, w) => {
                let e = self.word(&w.value, nesting, dir);
                Redirection {
                    fd: fd(f),
                    op: RedirectOp::Herestring,
                    target: e.text,
                    dynamic: e.dynamic,
                }
            }
            ast::IoRedirect::OutputAndError(w, append) => {
                let e = self.word(&w.value, nesting, dir);
                Redirection {
                    fd: None,
                    op: if *append {
                        RedirectOp::AppendBoth
                    } else {
                        RedirectOp::WriteBoth
                    },
                    target: e.text,
                    dynamic: e.dynamic,
                }
            }
        }
    }

    /// Quote removal of one word; the commands of its substitutions are
    /// added (before the command the word belongs to is).
    fn word(&mut self, raw: &str, nesting: &[Nesting], dir: &Dir) -> Expanded {
        let pieces = match word::parse(raw, &self.options) {
            Ok(p) => p,
            Err(_) => {
                self.note(format!("the word `{raw}` could not be read"));
                return Expanded {
                    text: raw.to_owned(),
                    dynamic: true,
                };
            }
        };
        let mut text = String::new();
        let dynamic = self.pieces(&pieces, nesting, dir, &mut text, false);
        if dynamic {
            Expanded {
                text: raw.to_owned(),
                dynamic,
            }
        } else {
            Expanded { text, dynamic }
        }
    }

    /// Appends the literal text of `pieces` to `out`; whether any is
    /// dynamic. `quoted`: inside double quotes (no globs there).
    fn pieces(
        &mut self,
        pieces: &[WordPieceWithSource],
        nesting: &[Nesting],
        dir: &Dir,
        out: &mut String,
        quoted: bool,
    ) -> bool {
        let mut dynamic = false;
        for p in pieces {
            match &p.piece {
                WordPiece::Text(t) => {
                    if !quoted && is_pattern(t) {
                        dynamic = true;
                    }
                    out.push_str(t);
                }
                WordPiece::SingleQuotedText(t) => out.push_str(t),
                WordPiece::AnsiCQuotedText(t) => out.push_str(&ansi_c(t)),
                WordPiece::DoubleQuotedSequence(inner)
                | WordPiece::GettextDoubleQuotedSequence(inner) => {
                    dynamic |= self.pieces(inner, nesting, dir, out, true);
                }
                WordPiece::TildeExpansion(t) => {
                    out.push_str(&tilde(t));
                }
                WordPiece::EscapeSequence(e) => {
                    // `\x` is `x`; inside double quotes only `\$`, `` \` ``,
                    // `\"`, `\\` and a newline lose their backslash.
                    let c = e.strip_prefix('\\').unwrap_or(e);
                    if quoted && !matches!(c, "$" | "`" | "\"" | "\\" | "\n") {
                        out.push_str(e);
                    } else if c != "\n" {
                        out.push_str(c);
                    }
                }
                WordPiece::ParameterExpansion(_) | WordPiece::ArithmeticExpression(_) => {
                    dynamic = true;
                }
                WordPiece::CommandSubstitution(s) | WordPiece::BackquotedCommandSubstitution(s) => {
                    dynamic = true;
                    self.substitution(s, nesting, dir);
                }
            }
        }
        dynamic
    }

    /// The commands of a command substitution.
    fn substitution(&mut self, text: &str, nesting: &[Nesting], dir: &Dir) {
        if self.depth + 1 > MAX_DEPTH {
            self.note(format!("substitutions nest more than {MAX_DEPTH} deep"));
            return;
        }
        let inner = parse(text, self.depth + 1);
        if inner.status == ParseStatus::Unparsed {
            self.note(format!(
                "a command substitution is not a command line bash reads: {}",
                inner.notes.join("; ")
            ));
            return;
        }
        for n in inner.notes {
            self.note(n);
        }
        for mut c in inner.commands {
            let mut n = nesting.to_vec();
            n.push(Nesting::CommandSubstitution);
            n.extend(c.nesting);
            c.nesting = n;
            if c.directory == "." {
                c.directory = dir.shown();
            } else if let Some(d) = &dir.0
                && !c.directory.is_empty()
            {
                c.directory = join(d, &c.directory);
            }
            self.commands.push(c);
        }
    }
}

enum Item<'a> {
    Prefix(&'a ast::CommandPrefixOrSuffixItem),
    Name(&'a ast::Word),
    Suffix(&'a ast::CommandPrefixOrSuffixItem),
}

/// Whether unquoted `t` holds a glob or a brace expansion.
fn is_pattern(t: &str) -> bool {
    let bracket = t.find('[').is_some_and(|i| t[i + 1..].contains(']'));
    t.contains(['*', '?'])
        || bracket
        || (t.contains('{') && t.contains('}') && (t.contains(',') || t.contains("..")))
}

fn tilde(t: &word::TildeExpr) -> String {
    match t {
        word::TildeExpr::Home => "~".into(),
        word::TildeExpr::UserHome(u) => format!("~{u}"),
        word::TildeExpr::WorkingDir => "~+".into(),
        word::TildeExpr::OldWorkingDir => "~-".into(),
        other => format!("{other:?}"),
    }
}

/// The text of `$'…'` with its escapes read.
fn ansi_c(t: &str) -> String {
    let mut out = String::with_capacity(t.len());
    let mut chars = t.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('0') => out.push('\0'),
            Some('e' | 'E') => out.push('\u{1b}'),
            Some('a') => out.push('\u{7}'),
            Some('b') => out.push('\u{8}'),
            Some(c @ ('\\' | '\'' | '"' | '?')) => out.push(c),
            Some(c) => {
                out.push('\\');
                out.push(c);
            }
            None => out.push('\\'),
        }
    }
    out
}
