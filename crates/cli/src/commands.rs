//! zkCli's `CliCommand`s: option parsing, the requests each sends, and what each prints.
//!
//! Every command first parses its words with commons-cli rules ([`crate::cmdline`]), checks
//! its argument count (printing its usage on failure), validates paths with the Java
//! client's rules ([`check_path`]), then talks to the server through [`Shell::request`].
//! Results go to stdout; `Created ...`, deprecation notes and error messages go to stderr,
//! as in zkCli. Watches are set for the session's default watcher: their handles are
//! detached, and the events reach the shell's event stream ([`crate::events`]).
//!
//! Opcodes match the Java client: `create` sends create (1), createContainer (19) or
//! createTTL (21), with a null buffer when no data is given; `ls` getChildren (8) or
//! getChildren2 (12) with `-s`; `ls -R` getData on the root then getChildren per node;
//! `deleteall` a getChildren walk then multi (14) batches of deletes; `addauth` without
//! credentials an auth packet with a null buffer.

use crate::cmdline::{self, CommandLine, GroupSpec, OptSpec, OptionsSpec};
use crate::format;
use crate::java::{self, Uncaught};
use crate::shell::{usage_of, CmdResult, Failure, Shell, CLI_VERSION};
use corral_client::connect_string::check_path;
use corral_client::{perms, Acl, AddWatchMode, CreateMode, Error, Op, Stat, WatcherType};

/// `deleteall`'s default batch size (ops per multi).
pub const DELETE_BATCH_DEFAULT: i32 = 1000;

/// The largest TTL zkCli accepts (`EphemeralType.TTL.maxValue()`), in milliseconds.
pub const TTL_MS_MAX: i64 = 0xFF_FFFF_FFFF;

const fn flag(name: &'static str, desc: &'static str) -> OptSpec {
    OptSpec {
        name,
        has_arg: false,
        desc,
    }
}

const fn valued(name: &'static str, desc: &'static str) -> OptSpec {
    OptSpec {
        name,
        has_arg: true,
        desc,
    }
}

const fn opts(list: &'static [OptSpec]) -> OptionsSpec {
    OptionsSpec {
        opts: list,
        group: None,
    }
}

const CREATE: OptionsSpec = opts(&[
    flag("e", "ephemeral"),
    flag("s", "sequential"),
    flag("c", "container"),
    valued("t", "ttl"),
]);
const LS: OptionsSpec = opts(&[
    flag("?", "help"),
    flag("s", "stat"),
    flag("w", "watch"),
    flag("R", "recurse"),
]);
const GET: OptionsSpec = opts(&[flag("s", "stats"), flag("w", "watch")]);
const SET: OptionsSpec = opts(&[flag("s", "stats"), valued("v", "version")]);
const STAT: OptionsSpec = opts(&[flag("w", "watch")]);
const DELETE: OptionsSpec = opts(&[valued("v", "version")]);
const DELETE_ALL: OptionsSpec = opts(&[valued("b", "batch size")]);
const GET_ACL: OptionsSpec = opts(&[flag("s", "stats")]);
const SET_ACL: OptionsSpec = opts(&[
    flag("s", "stats"),
    valued("v", "version"),
    flag("R", "recursive"),
]);
const ADD_WATCH: OptionsSpec = opts(&[valued("m", "")]);
const REMOVE_WATCHES: OptionsSpec = opts(&[
    flag("c", "child watcher type"),
    flag("d", "data watcher type"),
    flag("a", "any watcher type"),
    flag("l", "remove locally when there is no server connection"),
]);
const CONFIG: OptionsSpec = opts(&[
    flag("s", "stats"),
    flag("w", "watch"),
    flag("c", "client connection string"),
]);
const RECONFIG: OptionsSpec = opts(&[
    flag("s", "stats"),
    valued("v", "required current config version"),
    valued("file", "path of config file to parse for membership"),
    valued(
        "members",
        "comma-separated list of config strings for non-incremental reconfig",
    ),
    valued(
        "add",
        "comma-separated list of config strings for new servers",
    ),
    valued("remove", "comma-separated list of server IDs to remove"),
]);
pub(crate) const SET_QUOTA: OptionsSpec = OptionsSpec {
    opts: &[
        valued("n", "num soft quota"),
        valued("b", "bytes soft quota"),
        valued("N", "num hard quota"),
        valued("B", "bytes hard quota"),
    ],
    group: Some(GroupSpec {
        members: &["n", "b", "N", "B"],
        required: true,
    }),
};
pub(crate) const DEL_QUOTA: OptionsSpec = OptionsSpec {
    opts: &[
        flag("n", "num soft quota"),
        flag("b", "bytes soft quota"),
        flag("N", "num hard quota"),
        flag("B", "bytes hard quota"),
    ],
    group: Some(GroupSpec {
        members: &["n", "b", "N", "B"],
        required: false,
    }),
};

/// What `ls -?` prints (commons-cli `HelpFormatter` for ls's options).
const LS_HELP: &str =
    "usage: ls [options] path\n -?   help\n -R   recurse\n -s   stat\n -w   watch\n";

/// `CliParseException(ParseException)`.
pub(crate) fn parse(spec: &OptionsSpec, words: &[String]) -> Result<CommandLine, Failure> {
    cmdline::parse(spec, words).map_err(|e| Failure::cli(e.java_text()))
}

/// A `CliWrapperException` for a failed operation on `path`.
pub(crate) fn wrap(e: &Error, path: &str) -> Failure {
    Failure::cli(format::cli_wrapper_message(e, Some(path)))
}

/// Java's `String.split(regex)` for a one-char separator: trailing empty strings dropped.
fn java_split(s: &str, sep: char) -> Vec<&str> {
    if !s.contains(sep) {
        return vec![s];
    }
    let mut parts: Vec<&str> = s.split(sep).collect();
    while parts.last().is_some_and(|p| p.is_empty()) {
        parts.pop();
    }
    parts
}

/// Children sorted as Java sorts strings (by UTF-16 code units).
pub(crate) fn java_sort(v: &mut [String]) {
    v.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
}

/// `parent + "/" + child`, without doubling the root's slash.
pub(crate) fn child_path(parent: &str, child: &str) -> String {
    if parent == "/" {
        format!("/{child}")
    } else {
        format!("{parent}/{child}")
    }
}

/// `[a, b, c]` (Java's `List.toString`).
fn java_list(items: &[String]) -> String {
    format!("[{}]", items.join(", "))
}

/// A depth-first walk in the order of `ZKUtil.visitSubTreeDFS`: the root, then all children
/// of a node (sorted) before the subtree of its first child. A node that vanished during the
/// walk is skipped; any other error ends it.
pub(crate) struct SubtreeWalk {
    root: Option<String>,
    watch: bool,
    emit: std::collections::VecDeque<String>,
    expand: Vec<String>,
}

impl SubtreeWalk {
    pub(crate) fn new(root: &str, watch: bool) -> SubtreeWalk {
        SubtreeWalk {
            root: Some(root.to_owned()),
            watch,
            emit: Default::default(),
            expand: Vec::new(),
        }
    }

    /// The next path, `Ok(None)` at the end, or the failed operation's error and path.
    pub(crate) async fn next(&mut self, shell: &Shell) -> Result<Option<String>, (Error, String)> {
        let client = shell.live().map_err(|_| (Error::Closed, String::new()))?;
        if let Some(root) = self.root.take() {
            let r = if self.watch {
                shell
                    .request(client.get_data_w(&root))
                    .await
                    .map(|(_, _, fut)| fut.detach())
            } else {
                shell.request(client.get_data(&root)).await.map(|_| ())
            };
            r.map_err(|e| (e, root.clone()))?;
            self.expand.push(root.clone());
            return Ok(Some(root));
        }
        loop {
            if let Some(p) = self.emit.pop_front() {
                return Ok(Some(p));
            }
            let Some(node) = self.expand.pop() else {
                return Ok(None);
            };
            let listed = if self.watch {
                shell
                    .request(client.get_children_w(&node))
                    .await
                    .map(|(c, fut)| {
                        fut.detach();
                        c
                    })
            } else {
                shell.request(client.get_children(&node)).await
            };
            let mut children = match listed {
                Ok(c) => c,
                Err(Error::NoNode) => continue,
                Err(e) => return Err((e, node)),
            };
            java_sort(&mut children);
            let paths: Vec<String> = children.iter().map(|c| child_path(&node, c)).collect();
            self.expand.extend(paths.iter().rev().cloned());
            self.emit.extend(paths);
        }
    }
}

impl Shell {
    /// Runs a command from zkCli's `commandMapCli` (the others are handled by the caller).
    pub(crate) async fn run_cli_command(&mut self, cmd: &str, words: Vec<String>) -> CmdResult {
        match cmd {
            "create" => self.cmd_create(words).await,
            "delete" => self.cmd_delete(words).await,
            "deleteall" => self.cmd_deleteall(words).await,
            "set" => self.cmd_set(words).await,
            "get" => self.cmd_get(words).await,
            "ls" => self.cmd_ls(words).await,
            "getAcl" => self.cmd_get_acl(words).await,
            "setAcl" => self.cmd_set_acl(words).await,
            "stat" => self.cmd_stat(words).await,
            "sync" => self.cmd_sync(words).await,
            "setquota" => self.cmd_setquota(words).await,
            "listquota" => self.cmd_listquota(words).await,
            "delquota" => self.cmd_delquota(words).await,
            "addauth" => self.cmd_addauth(words).await,
            "reconfig" => self.cmd_reconfig(words).await,
            "config" => self.cmd_config(words).await,
            "removewatches" => self.cmd_removewatches(words).await,
            "getEphemerals" => self.cmd_get_ephemerals(words).await,
            "getAllChildrenNumber" => self.cmd_all_children_number(words).await,
            "version" => self.cmd_version(words),
            "addWatch" => self.cmd_add_watch(words).await,
            "whoami" => self.cmd_whoami().await,
            "close" => {
                self.close_session().await;
                Ok(())
            }
            // connect, history, redo, printwatches, quit: done by the caller.
            _ => Ok(()),
        }
    }

    /// `AclParser.parse`: bad entries are reported on stderr and left out.
    fn parse_acl(&self, text: &str) -> Vec<Acl> {
        let mut acl = Vec::new();
        for entry in java_split(text, ',') {
            let (Some(first), Some(last)) = (entry.find(':'), entry.rfind(':')) else {
                self.errln(&format!("{entry} does not have the form scheme:id:perm"));
                continue;
            };
            if first == last {
                self.errln(&format!("{entry} does not have the form scheme:id:perm"));
                continue;
            }
            let mut p = 0;
            for c in entry[last + 1..].chars() {
                match c {
                    'r' => p |= perms::READ,
                    'w' => p |= perms::WRITE,
                    'c' => p |= perms::CREATE,
                    'd' => p |= perms::DELETE,
                    'a' => p |= perms::ADMIN,
                    other => self.errln(&format!("Unknown perm type: {other}")),
                }
            }
            acl.push(Acl::new(p, &entry[..first], &entry[first + 1..last]));
        }
        acl
    }

    /// The deprecated trailing `watch` word of get/ls/stat: zkCli overwrites the third word
    /// with `-w` and parses again.
    fn legacy_watch(
        &self,
        spec: &OptionsSpec,
        words: &[String],
        cl: CommandLine,
        note: &str,
    ) -> Result<CommandLine, Failure> {
        if cl.args.len() <= 2 {
            return Ok(cl);
        }
        let mut rewritten = words.to_vec();
        if rewritten.len() > 2 {
            rewritten[2] = "-w".into();
        }
        self.errln(note);
        parse(spec, &rewritten)
    }

    async fn cmd_create(&mut self, words: Vec<String>) -> CmdResult {
        let cl = parse(&CREATE, &words)?;
        let args = &cl.args;
        if args.len() < 2 {
            return Err(Failure::cli(usage_of("create")));
        }
        let (has_e, has_s, has_c, has_t) = (cl.has("e"), cl.has("s"), cl.has("c"), cl.has("t"));
        if has_c && (has_e || has_s) {
            return Err(Failure::cli(
                "-c cannot be combined with -s or -e. Containers cannot be ephemeral or sequential.",
            ));
        }
        let ttl = if has_t {
            java::parse_long(cl.value("t").unwrap_or(""))
                .map_err(|_| Failure::cli("-t argument must be a long value"))?
        } else {
            0
        };
        if has_t && has_e {
            return Err(Failure::cli("TTLs cannot be used with Ephemeral znodes"));
        }
        if has_t && has_c {
            return Err(Failure::cli("TTLs cannot be used with Container znodes"));
        }
        let mode = match (has_e, has_s, has_c, has_t) {
            (true, true, _, _) => CreateMode::EphemeralSequential,
            (true, false, _, _) => CreateMode::Ephemeral,
            (false, true, _, true) => CreateMode::PersistentSequentialWithTtl { ttl_ms: ttl },
            (false, true, _, false) => CreateMode::PersistentSequential,
            (false, false, true, _) => CreateMode::Container,
            (false, false, false, true) => CreateMode::PersistentWithTtl { ttl_ms: ttl },
            (false, false, false, false) => CreateMode::Persistent,
        };
        if has_t && (ttl <= 0 || ttl > TTL_MS_MAX) {
            return Err(Failure::cli(format!(
                "ttl must be positive and cannot be larger than: {TTL_MS_MAX}"
            )));
        }
        let path = args[1].clone();
        let data = args.get(2).map(|d| d.as_bytes().to_vec());
        let acl = match args.get(3) {
            Some(text) => self.parse_acl(text),
            None => Acl::open_unsafe(),
        };
        check_path(&path, mode.is_sequential()).map_err(Failure::cli)?;
        if acl.is_empty() {
            // The Java client refuses an empty ACL itself (no path in the exception).
            self.errln(&format::error_message(&Error::InvalidAcl, None));
            return Err(Failure::cli(format::cli_wrapper_message(
                &Error::InvalidAcl,
                None,
            )));
        }
        let client = self.live()?;
        match self
            .request(client.create_opt(&path, data.as_deref(), &acl, mode))
            .await
        {
            Ok(created) => {
                self.errln(&format!("Created {created}"));
                Ok(())
            }
            Err(e) => {
                match e {
                    Error::EphemeralOnLocalSession => {
                        self.errln("Unable to create ephemeral node on a local session")
                    }
                    Error::InvalidAcl => self.errln(&format::error_message(&e, Some(&path))),
                    _ => {}
                }
                Err(wrap(&e, &path))
            }
        }
    }

    async fn cmd_delete(&mut self, words: Vec<String>) -> CmdResult {
        let cl = parse(&DELETE, &words)?;
        if cl.args.len() < 2 {
            return Err(Failure::cli(usage_of("delete")));
        }
        if cl.args.len() > 2 {
            self.errln(
                "'delete path [version]' has been deprecated. Please use 'delete [-v version] path' instead.",
            );
        }
        let path = cl.args[1].clone();
        let version = match cl.value("v") {
            Some(v) => java::parse_int(v)?,
            None => -1,
        };
        check_path(&path, false).map_err(Failure::cli)?;
        let client = self.live()?;
        self.request(client.delete(&path, version))
            .await
            .map_err(|e| wrap(&e, &path))
    }

    async fn cmd_deleteall(&mut self, words: Vec<String>) -> CmdResult {
        let cl = parse(&DELETE_ALL, &words)?;
        if cl.args.len() < 2 {
            return Err(Failure::cli(usage_of("deleteall")));
        }
        let batch = match cl.value("b") {
            Some(b) => {
                java::parse_int(b).map_err(|_| Failure::cli("-b argument must be an int value"))?
            }
            None => DELETE_BATCH_DEFAULT,
        };
        let root = cl.args[1].clone();
        check_path(&root, false).map_err(Failure::cli)?;
        let client = self.live()?;
        // Breadth-first listing (ZKUtil.listSubTreeBFS), deleted leaves first.
        let mut tree = vec![root.clone()];
        let mut next = 0;
        while next < tree.len() {
            let node = tree[next].clone();
            next += 1;
            let children = self
                .request(client.get_children(&node))
                .await
                .map_err(|e| wrap(&e, &node))?;
            tree.extend(children.iter().map(|c| child_path(&node, c)));
        }
        let mut ok = true;
        let mut ops = Vec::new();
        for (i, node) in tree.iter().enumerate().rev() {
            ops.push(Op::delete(node, -1));
            if ops.len() as i64 == batch as i64 || i == 0 {
                if !ok {
                    break;
                }
                let batch_ops = std::mem::take(&mut ops);
                if self.request(client.multi(&batch_ops)).await.is_err() {
                    ok = false;
                }
            }
        }
        if !ok {
            self.errln("Failed to delete some node(s) in the subtree!");
        }
        Ok(())
    }

    async fn cmd_set(&mut self, words: Vec<String>) -> CmdResult {
        let cl = parse(&SET, &words)?;
        if cl.args.len() < 3 {
            return Err(Failure::cli(usage_of("set")));
        }
        let path = cl.args[1].clone();
        let data = cl.args[2].as_bytes().to_vec();
        let version = match cl.value("v") {
            Some(v) => java::parse_int(v)?,
            None => -1,
        };
        check_path(&path, false).map_err(Failure::cli)?;
        let client = self.live()?;
        let stat = self
            .request(client.set_data(&path, &data, version))
            .await
            .map_err(|e| wrap(&e, &path))?;
        if cl.has("s") {
            self.out(&format::stat(&stat));
        }
        Ok(())
    }

    async fn cmd_get(&mut self, words: Vec<String>) -> CmdResult {
        let cl = parse(&GET, &words)?;
        if cl.args.len() < 2 {
            return Err(Failure::cli(usage_of("get")));
        }
        let cl = self.legacy_watch(
            &GET,
            &words,
            cl,
            "'get path [watch]' has been deprecated. Please use 'get [-s] [-w] path' instead.",
        )?;
        let watch = cl.has("w");
        let Some(path) = cl.args.get(1).cloned() else {
            return Err(Failure::cli(usage_of("get")));
        };
        check_path(&path, false).map_err(Failure::cli)?;
        let client = self.live()?;
        let (data, stat) = if watch {
            let (data, stat, fut) = self
                .request(client.get_data_opt_w(&path))
                .await
                .map_err(|e| wrap(&e, &path))?;
            fut.detach();
            (data, stat)
        } else {
            self.request(client.get_data_opt(&path))
                .await
                .map_err(|e| wrap(&e, &path))?
        };
        let text = match &data {
            Some(d) => String::from_utf8_lossy(d).into_owned(),
            None => "null".to_owned(),
        };
        self.outln(&text);
        if cl.has("s") {
            self.out(&format::stat(&stat));
        }
        Ok(())
    }

    async fn cmd_ls(&mut self, words: Vec<String>) -> CmdResult {
        let cl = parse(&LS, &words)?;
        if cl.has("?") {
            self.out(LS_HELP);
        }
        let cl = self.legacy_watch(
            &LS,
            &words,
            cl,
            "'ls path [watch]' has been deprecated. Please use 'ls [-w] path' instead.",
        )?;
        if cl.args.len() < 2 {
            return Err(Failure::cli(usage_of("ls")));
        }
        let path = cl.args[1].clone();
        let watch = cl.has("w");
        if cl.has("R") {
            check_path(&path, false).map_err(Failure::cli)?;
            let mut walk = SubtreeWalk::new(&path, watch);
            loop {
                match walk.next(self).await {
                    Ok(Some(p)) => self.outln(&p),
                    Ok(None) => return Ok(()),
                    Err((e, p)) => return Err(wrap(&e, &p)),
                }
            }
        }
        check_path(&path, false).map_err(Failure::cli)?;
        let client = self.live()?;
        let (mut children, stat) = match (cl.has("s"), watch) {
            (false, false) => (self.request(client.get_children(&path)).await, None),
            (false, true) => match self.request(client.get_children_w(&path)).await {
                Ok((c, fut)) => {
                    fut.detach();
                    (Ok(c), None)
                }
                Err(e) => (Err(e), None),
            },
            (true, false) => match self.request(client.get_children2(&path)).await {
                Ok((c, s)) => (Ok(c), Some(s)),
                Err(e) => (Err(e), None),
            },
            (true, true) => match self.request(client.get_children2_w(&path)).await {
                Ok((c, s, fut)) => {
                    fut.detach();
                    (Ok(c), Some(s))
                }
                Err(e) => (Err(e), None),
            },
        };
        let children = children.as_mut().map_err(|e| wrap(e, &path))?;
        java_sort(children);
        self.outln(&java_list(children));
        if let Some(s) = stat {
            self.out(&format::stat(&s));
        }
        Ok(())
    }

    async fn cmd_stat(&mut self, words: Vec<String>) -> CmdResult {
        let cl = parse(&STAT, &words)?;
        if cl.args.len() < 2 {
            return Err(Failure::cli(usage_of("stat")));
        }
        let cl = self.legacy_watch(
            &STAT,
            &words,
            cl,
            "'stat path [watch]' has been deprecated. Please use 'stat [-w] path' instead.",
        )?;
        let Some(path) = cl.args.get(1).cloned() else {
            return Err(Failure::cli(usage_of("stat")));
        };
        check_path(&path, false).map_err(Failure::cli)?;
        let client = self.live()?;
        let stat: Option<Stat> = if cl.has("w") {
            let (s, fut) = self
                .request(client.exists_w(&path))
                .await
                .map_err(|e| wrap(&e, &path))?;
            fut.detach();
            s
        } else {
            self.request(client.exists(&path))
                .await
                .map_err(|e| wrap(&e, &path))?
        };
        match stat {
            Some(s) => {
                self.out(&format::stat(&s));
                Ok(())
            }
            None => Err(wrap(&Error::NoNode, &path)),
        }
    }

    async fn cmd_get_acl(&mut self, words: Vec<String>) -> CmdResult {
        let cl = parse(&GET_ACL, &words)?;
        if cl.args.len() < 2 {
            return Err(Failure::cli(usage_of("getAcl")));
        }
        let path = cl.args[1].clone();
        check_path(&path, false).map_err(Failure::cli)?;
        let client = self.live()?;
        let (acl, stat) = self
            .request(client.get_acl(&path))
            .await
            .map_err(|e| wrap(&e, &path))?;
        let text: String = acl.iter().map(format::acl_entry).collect();
        self.out(&text);
        if cl.has("s") {
            self.out(&format::stat(&stat));
        }
        Ok(())
    }

    async fn cmd_set_acl(&mut self, words: Vec<String>) -> CmdResult {
        let cl = parse(&SET_ACL, &words)?;
        if cl.args.len() < 3 {
            return Err(Failure::cli(usage_of("setAcl")));
        }
        let path = cl.args[1].clone();
        let acl = self.parse_acl(&cl.args[2]);
        let version = match cl.value("v") {
            Some(v) => java::parse_int(v)?,
            None => -1,
        };
        check_path(&path, false).map_err(Failure::cli)?;
        let client = self.live()?;
        if cl.has("R") {
            let mut walk = SubtreeWalk::new(&path, false);
            loop {
                match walk.next(self).await {
                    Ok(Some(p)) => {
                        let r = if acl.is_empty() {
                            Err(format::error_message(&Error::InvalidAcl, None))
                        } else {
                            self.request(client.set_acl(&p, &acl, version))
                                .await
                                .map(|_| ())
                                .map_err(|e| format::error_message(&e, Some(&p)))
                        };
                        // zkCli prints these without a newline.
                        if let Err(msg) = r {
                            self.out(&msg);
                        }
                    }
                    Ok(None) => return Ok(()),
                    Err((e, p)) => return Err(wrap(&e, &p)),
                }
            }
        }
        if acl.is_empty() {
            return Err(Failure::cli(format::cli_wrapper_message(
                &Error::InvalidAcl,
                None,
            )));
        }
        let stat = self
            .request(client.set_acl(&path, &acl, version))
            .await
            .map_err(|e| wrap(&e, &path))?;
        if cl.has("s") {
            self.out(&format::stat(&stat));
        }
        Ok(())
    }

    async fn cmd_sync(&mut self, words: Vec<String>) -> CmdResult {
        let cl = parse(&OptionsSpec::NONE, &words)?;
        if cl.args.len() < 2 {
            return Err(Failure::cli(usage_of("sync")));
        }
        let path = cl.args[1].clone();
        check_path(&path, false).map_err(Failure::cli)?;
        let client = self.live()?;
        match self.request(client.sync(&path)).await {
            Ok(()) => self.outln("Sync is OK"),
            Err(e) => {
                let rc = format::error_code(&e).map(|c| c.code()).unwrap_or(-1);
                self.outln(&format!("Sync has failed. rc={rc}"));
            }
        }
        Ok(())
    }

    async fn cmd_addauth(&mut self, words: Vec<String>) -> CmdResult {
        let cl = parse(&OptionsSpec::NONE, &words)?;
        if cl.args.len() < 2 {
            return Err(Failure::cli(usage_of("addauth")));
        }
        // No credentials: a null buffer, as zkCli sends (ZooKeeper rejects it for digest).
        let auth = cl.args.get(2).map(|a| a.as_bytes().to_vec());
        let client = self.live()?;
        // zkCli does not wait for the answer; a rejection shows as an AuthFailed event.
        let _ = self
            .request(client.add_auth_opt(&cl.args[1], auth.as_deref()))
            .await;
        Ok(())
    }

    async fn cmd_config(&mut self, words: Vec<String>) -> CmdResult {
        let cl = parse(&CONFIG, &words)?;
        let client = self.live()?;
        let node = corral_client::CONFIG_NODE;
        let (data, stat) = if cl.has("w") {
            let (d, s, fut) = self
                .request(client.get_config_opt_w())
                .await
                .map_err(|e| wrap(&e, node))?;
            fut.detach();
            (d, s)
        } else {
            self.request(client.get_config_opt())
                .await
                .map_err(|e| wrap(&e, node))?
        };
        let text = match &data {
            Some(d) => String::from_utf8_lossy(d).into_owned(),
            None => "null".to_owned(),
        };
        if cl.has("c") {
            self.outln(&client_config_string(&text));
        } else {
            self.outln(&text);
        }
        if cl.has("s") {
            self.out(&format::stat(&stat));
        }
        Ok(())
    }

    async fn cmd_reconfig(&mut self, words: Vec<String>) -> CmdResult {
        let cl = parse(&RECONFIG, &words)?;
        let (file, members, add, remove) = (
            cl.has("file"),
            cl.has("members"),
            cl.has("add"),
            cl.has("remove"),
        );
        if !(file || members || add || remove) {
            return Err(Failure::cli(usage_of("reconfig")));
        }
        let version = match cl.value("v") {
            Some(v) => java::parse_long_hex(v).ok_or_else(|| {
                Failure::cli("-v must be followed by a long (configuration version)")
            })?,
            None => -1,
        };
        if (file || members) && (add || remove) {
            return Err(Failure::cli(
                "Can't use -file or -members together with -add or -remove (mixing incremental \
                 and non-incremental modes is not allowed)",
            ));
        }
        if file && members {
            return Err(Failure::cli(
                "Can't use -file and -members together (conflicting non-incremental modes)",
            ));
        }
        let joining = cl.value("add").map(str::to_lowercase);
        let leaving = cl.value("remove").map(str::to_lowercase);
        let mut new_members = cl.value("members").map(str::to_lowercase);
        if let Some(f) = cl.value("file") {
            match std::fs::read_to_string(f) {
                Ok(text) => {
                    let servers: Vec<&str> = text
                        .lines()
                        .map(str::trim)
                        .filter(|l| l.starts_with("server."))
                        .collect();
                    new_members = Some(servers.join("\n"));
                }
                Err(e) => return Err(Failure::cli(format!("Error processing {f}{e}"))),
            }
        }
        let client = self.live()?;
        let (data, stat) = self
            .request(client.reconfig(
                joining.as_deref(),
                leaving.as_deref(),
                new_members.as_deref(),
                version,
            ))
            .await
            .map_err(|e| Failure::cli(format::cli_wrapper_message(&e, None)))?;
        self.outln(&format!(
            "Committed new configuration:\n{}",
            String::from_utf8_lossy(&data)
        ));
        if cl.has("s") {
            self.out(&format::stat(&stat));
        }
        Ok(())
    }

    async fn cmd_removewatches(&mut self, words: Vec<String>) -> CmdResult {
        let cl = parse(&REMOVE_WATCHES, &words)?;
        if cl.args.len() < 2 {
            return Err(Failure::cli(usage_of("removewatches")));
        }
        let path = cl.args[1].clone();
        let kind = if cl.has("c") {
            WatcherType::Children
        } else if cl.has("d") {
            WatcherType::Data
        } else {
            WatcherType::Any
        };
        let local = cl.has("l");
        check_path(&path, false).map_err(Failure::cli)?;
        let client = self.live()?;
        // `removeAllWatches(path, type, local)`, settled by the client as Java's is.
        self.request(client.remove_watches(&path, kind, local))
            .await
            .map_err(|e| wrap(&e, &path))
    }

    async fn cmd_get_ephemerals(&mut self, words: Vec<String>) -> CmdResult {
        let cl = parse(&OptionsSpec::NONE, &words)?;
        let prefix = cl.args.get(1).cloned();
        if let Some(p) = &prefix {
            check_path(p, false).map_err(Failure::cli)?;
        }
        let client = self.live()?;
        let shown = prefix.clone().unwrap_or_else(|| "/".into());
        let paths = self
            .request(client.get_ephemerals(&shown))
            .await
            .map_err(|e| wrap(&e, &shown))?;
        self.outln(&java_list(&paths));
        Ok(())
    }

    async fn cmd_all_children_number(&mut self, words: Vec<String>) -> CmdResult {
        let cl = parse(&OptionsSpec::NONE, &words)?;
        if cl.args.len() < 2 {
            return Err(Failure::cli(usage_of("getAllChildrenNumber")));
        }
        let path = cl.args[1].clone();
        check_path(&path, false).map_err(Failure::cli)?;
        let client = self.live()?;
        let n = self
            .request(client.get_all_children_number(&path))
            .await
            .map_err(|e| wrap(&e, &path))?;
        self.outln(&n.to_string());
        Ok(())
    }

    fn cmd_version(&mut self, words: Vec<String>) -> CmdResult {
        let cl = parse(&OptionsSpec::NONE, &words)?;
        if cl.args.len() > 1 {
            return Err(Failure::cli(usage_of("version")));
        }
        self.outln(&format!("ZooKeeper CLI version: {CLI_VERSION}"));
        Ok(())
    }

    async fn cmd_add_watch(&mut self, words: Vec<String>) -> CmdResult {
        let cl = parse(&ADD_WATCH, &words)?;
        if cl.args.len() != 2 {
            return Err(Failure::cli(usage_of("addWatch")));
        }
        if let Some(m) = cl.value("m") {
            self.add_watch_mode = match m.to_uppercase().as_str() {
                "PERSISTENT" => AddWatchMode::Persistent,
                "PERSISTENT_RECURSIVE" => AddWatchMode::PersistentRecursive,
                _ => return Err(Failure::cli(usage_of("addWatch"))),
            };
        }
        let path = cl.args[1].clone();
        // zkCli does not catch the Java client's path check here.
        check_path(&path, false).map_err(|m| Failure::Uncaught(Uncaught::illegal_argument(&m)))?;
        let client = self.live()?;
        let stream = self
            .request(client.add_watch(&path, self.add_watch_mode))
            .await
            .map_err(|e| wrap(&e, &path))?;
        stream.detach();
        Ok(())
    }

    async fn cmd_whoami(&mut self) -> CmdResult {
        let client = self.live()?;
        let infos = self
            .request(client.who_am_i())
            .await
            .map_err(|e| Failure::cli(format::cli_wrapper_message(&e, None)))?;
        let mut text = String::from("Auth scheme: User\n");
        for i in infos {
            text.push_str(&format!("{}: {}\n", i.auth_scheme, i.user));
        }
        self.out(&text);
        Ok(())
    }
}

/// `ConfigUtils.getClientConfigStr`: `version host:port,host:port` from a dynamic config.
pub fn client_config_string(config: &str) -> String {
    let mut version = "";
    let mut addrs = Vec::new();
    for line in config.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        if key == "version" {
            version = value;
        }
        if !key.starts_with("server.") {
            continue;
        }
        // server.N=host:quorum:election[:role];[clientHost:]clientPort
        if let Some((_, client)) = value.split_once(';') {
            let client = client.trim();
            let host = value.split(':').next().unwrap_or("");
            let addr = if client.contains(':') {
                client.to_owned()
            } else {
                format!("{host}:{client}")
            };
            addrs.push(addr);
        }
    }
    format!("{version} {}", addrs.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_split_drops_trailing_empties() {
        assert_eq!(java_split("a,b", ','), ["a", "b"]);
        assert_eq!(java_split("a,,b,,", ','), ["a", "", "b"]);
        assert_eq!(java_split("", ','), [""]);
        assert_eq!(java_split(",", ','), Vec::<&str>::new());
    }

    #[test]
    fn client_config() {
        assert_eq!(client_config_string(""), " ");
        let cfg = "server.1=127.0.0.1:2888:3888:participant;0.0.0.0:2181\n\
                   server.2=10.0.0.2:2888:3888;2182\nversion=100000000";
        assert_eq!(
            client_config_string(cfg),
            "100000000 0.0.0.0:2181,10.0.0.2:2182"
        );
    }

    #[test]
    fn paths_and_lists() {
        assert_eq!(child_path("/", "a"), "/a");
        assert_eq!(child_path("/a", "b"), "/a/b");
        assert_eq!(java_list(&[]), "[]");
        assert_eq!(java_list(&["a".into(), "b".into()]), "[a, b]");
        let mut v = vec!["b".to_owned(), "B".into(), "a".into()];
        java_sort(&mut v);
        assert_eq!(v, ["B", "a", "b"]);
    }
}
