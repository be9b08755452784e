//! The master–worker example from the seeds ("ZooKeeper 分布式过程协同技术详解", chapter 2),
//! on corral-client.
//!
//! Layout, as in the book:
//!
//! ```text
//! /master                 ephemeral, data = master name      (create -e /master ...)
//! /workers/<name>         ephemeral, one per live worker     (create -e /workers/w1 ...)
//! /tasks/task-<seq>       persistent-sequential, data = cmd  (create -s /tasks/task- cmd)
//! /assign/<worker>/<task> persistent, data = cmd             (master assigns)
//! /status/<task>          persistent, data = "done <worker> <result>"
//! ```
//!
//! Roles: a master (one active, others on standby watching `/master`), workers, and a client
//! that submits tasks and waits for their status. The master watches `/workers` and `/tasks`,
//! moves each new task to a live worker in one multi (create the assignment, delete the
//! task), and moves the assignments of workers that died back to `/tasks`. Workers watch
//! their `/assign/<name>`, run each task, write `/status/<task>` and delete the assignment.
//!
//! Usage:
//!
//! ```text
//! master_worker [--connect HOSTS] master [NAME]
//! master_worker [--connect HOSTS] worker NAME
//! master_worker [--connect HOSTS] client TASKS
//! master_worker [--connect HOSTS] demo [--workers N] [--tasks N]   # all roles in one process
//! ```
//!
//! Every loop is bounded by `--max-seconds` (default 120): the program exits by itself.

use corral_client::connect_string::join;
use corral_client::{acls, Client, ClientOptions, CreateMode, Error, Op, Result, ANY_VERSION};
use std::collections::HashSet;
use std::time::{Duration, Instant};

const WAIT_SLICE: Duration = Duration::from_secs(1);

struct Args {
    connect: String,
    role: String,
    name: String,
    tasks: usize,
    workers: usize,
    max: Duration,
}

fn parse_args() -> std::result::Result<Args, String> {
    let mut a = Args {
        connect: "127.0.0.1:2181".into(),
        role: String::new(),
        name: String::new(),
        tasks: 10,
        workers: 3,
        max: Duration::from_secs(120),
    };
    let mut positional = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |what: &str| it.next().ok_or(format!("{what} needs a value"));
        match arg.as_str() {
            "--connect" => a.connect = value("--connect")?,
            "--tasks" => a.tasks = value("--tasks")?.parse().map_err(|e| format!("{e}"))?,
            "--workers" => a.workers = value("--workers")?.parse().map_err(|e| format!("{e}"))?,
            "--max-seconds" => {
                a.max = Duration::from_secs(
                    value("--max-seconds")?
                        .parse()
                        .map_err(|e| format!("{e}"))?,
                )
            }
            "-h" | "--help" => return Err(String::new()),
            _ => positional.push(arg),
        }
    }
    a.role = positional.first().cloned().ok_or("missing role")?;
    match a.role.as_str() {
        "master" => {
            a.name = positional
                .get(1)
                .cloned()
                .unwrap_or_else(|| format!("master-{}", std::process::id()))
        }
        "worker" => a.name = positional.get(1).cloned().ok_or("worker needs a NAME")?,
        "client" => {
            if let Some(n) = positional.get(1) {
                a.tasks = n.parse().map_err(|e| format!("{e}"))?;
            }
        }
        "demo" => {}
        other => return Err(format!("unknown role {other:?}")),
    }
    Ok(a)
}

async fn connect(cs: &str) -> Result<Client> {
    ClientOptions::new()
        .session_timeout(Duration::from_secs(6))
        .connect(cs)
        .await
}

/// `create /workers ""`, `create /tasks ""`, `create /assign ""`, `create /status ""`.
async fn bootstrap(zk: &Client) -> Result<()> {
    for p in ["/workers", "/tasks", "/assign", "/status"] {
        match zk
            .create(p, b"", &acls::open(), CreateMode::Persistent)
            .await
        {
            Ok(_) | Err(Error::NodeExists) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Runs as master until `deadline`: first wins `/master`, then assigns tasks.
async fn master(zk: Client, name: String, deadline: Instant) -> Result<()> {
    bootstrap(&zk).await?;
    // Election: create -e /master; if taken, watch it and try again when it goes.
    loop {
        if Instant::now() > deadline {
            return Ok(());
        }
        match zk
            .create(
                "/master",
                name.as_bytes(),
                &acls::open(),
                CreateMode::Ephemeral,
            )
            .await
        {
            Ok(_) => break,
            Err(Error::NodeExists) => {
                let (stat, gone) = zk.exists_w("/master").await?;
                if stat.is_some() {
                    println!("{name}: standing by");
                    let ev = tokio::time::timeout_at(deadline.into(), gone).await;
                    if let Ok(ev) = ev {
                        if ev.is_session_end() {
                            return Err(Error::SessionExpired);
                        }
                    }
                }
            }
            Err(e) => return Err(e),
        }
    }
    println!("{name}: I am the master");
    let mut next_worker = 0usize;
    while Instant::now() < deadline {
        let (mut workers, workers_changed) = zk.get_children_w("/workers").await?;
        workers.sort();
        let (mut tasks, tasks_changed) = zk.get_children_w("/tasks").await?;
        tasks.sort();
        // Give the tasks of dead workers back.
        let live: HashSet<&String> = workers.iter().collect();
        for w in zk.get_children("/assign").await? {
            if live.contains(&w) {
                continue;
            }
            let dir = join("/assign", &w);
            for t in zk.get_children(&dir).await.unwrap_or_default() {
                let from = join(&dir, &t);
                let Ok((cmd, _)) = zk.get_data(&from).await else {
                    continue;
                };
                let r = zk
                    .multi(&[
                        Op::create(
                            &join("/tasks", &t),
                            &cmd,
                            &acls::open(),
                            CreateMode::Persistent,
                        ),
                        Op::delete(&from, ANY_VERSION),
                    ])
                    .await;
                if r.is_ok() {
                    println!("{name}: {t} back from dead worker {w}");
                }
            }
            let _ = zk.delete(&dir, ANY_VERSION).await;
        }
        // Assign new tasks round-robin.
        if !workers.is_empty() {
            for t in &tasks {
                let w = &workers[next_worker % workers.len()];
                next_worker += 1;
                let from = join("/tasks", t);
                let Ok((cmd, _)) = zk.get_data(&from).await else {
                    continue;
                };
                let to = join(&join("/assign", w), t);
                match zk
                    .multi(&[
                        Op::create(&to, &cmd, &acls::open(), CreateMode::Persistent),
                        Op::delete(&from, ANY_VERSION),
                    ])
                    .await
                {
                    Ok(_) => println!("{name}: {t} -> {w}"),
                    Err(e) => println!("{name}: could not assign {t} to {w}: {e}"),
                }
            }
        }
        tokio::select! {
            ev = workers_changed => if ev.is_session_end() { return Err(Error::SessionExpired) },
            ev = tasks_changed => if ev.is_session_end() { return Err(Error::SessionExpired) },
            _ = tokio::time::sleep(WAIT_SLICE) => {}
        }
    }
    Ok(())
}

/// Runs as worker `name` until `deadline`.
async fn worker(zk: Client, name: String, deadline: Instant) -> Result<()> {
    bootstrap(&zk).await?;
    let inbox = join("/assign", &name);
    match zk
        .create(&inbox, b"", &acls::open(), CreateMode::Persistent)
        .await
    {
        Ok(_) | Err(Error::NodeExists) => {}
        Err(e) => return Err(e),
    }
    zk.create(
        &join("/workers", &name),
        format!("{name}:pid{}", std::process::id()).as_bytes(),
        &acls::open(),
        CreateMode::Ephemeral,
    )
    .await?;
    println!("{name}: registered");
    while Instant::now() < deadline {
        let (mut tasks, changed) = match zk.get_children_w(&inbox).await {
            Ok(x) => x,
            // The master cleaned our inbox after a session loss; make it again.
            Err(Error::NoNode) => {
                let _ = zk
                    .create(&inbox, b"", &acls::open(), CreateMode::Persistent)
                    .await;
                continue;
            }
            Err(e) => return Err(e),
        };
        tasks.sort();
        for t in tasks {
            let p = join(&inbox, &t);
            let Ok((cmd, _)) = zk.get_data(&p).await else {
                continue;
            };
            let result = String::from_utf8_lossy(&cmd).to_uppercase();
            tokio::time::sleep(Duration::from_millis(20)).await; // "work"
            let status = format!("done {name} {result}");
            match zk
                .multi(&[
                    Op::create(
                        &join("/status", &t),
                        status.as_bytes(),
                        &acls::open(),
                        CreateMode::Persistent,
                    ),
                    Op::delete(&p, ANY_VERSION),
                ])
                .await
            {
                Ok(_) => println!("{name}: {t} done"),
                Err(e) => println!("{name}: {t} not recorded: {e}"),
            }
        }
        tokio::select! {
            ev = changed => if ev.is_session_end() { return Err(Error::SessionExpired) },
            _ = tokio::time::sleep(WAIT_SLICE) => {}
        }
    }
    Ok(())
}

/// Submits `n` tasks and waits for every status. Returns the statuses.
async fn client(zk: Client, n: usize, deadline: Instant) -> Result<Vec<String>> {
    bootstrap(&zk).await?;
    let mut submitted = Vec::new();
    for i in 0..n {
        let p = zk
            .create(
                "/tasks/task-",
                format!("cmd-{i}").as_bytes(),
                &acls::open(),
                CreateMode::PersistentSequential,
            )
            .await?;
        let task = corral_client::connect_string::basename(&p).to_owned();
        println!("client: submitted {task}");
        submitted.push(task);
    }
    let mut out = Vec::new();
    for t in submitted {
        let status = join("/status", &t);
        loop {
            if Instant::now() > deadline {
                return Err(Error::Timeout);
            }
            let (stat, created) = zk.exists_w(&status).await?;
            if stat.is_some() {
                let (d, _) = zk.get_data(&status).await?;
                let s = String::from_utf8_lossy(&d).into_owned();
                println!("client: {t}: {s}");
                out.push(s);
                break;
            }
            let _ = tokio::time::timeout(WAIT_SLICE, created).await;
        }
    }
    Ok(out)
}

async fn demo(a: &Args, deadline: Instant) -> Result<()> {
    let m1 = connect(&a.connect).await?;
    let m2 = connect(&a.connect).await?;
    let mut handles = vec![
        tokio::spawn(master(m1.clone(), "master-1".into(), deadline)),
        tokio::spawn(master(m2, "master-2".into(), deadline)),
    ];
    let mut workers = Vec::new();
    for i in 0..a.workers {
        let w = connect(&a.connect).await?;
        workers.push(w.clone());
        handles.push(tokio::spawn(worker(w, format!("worker-{i}"), deadline)));
    }
    let c = connect(&a.connect).await?;
    let half = a.tasks / 2;
    let first = client(c.clone(), half, deadline).await?;
    // The active master dies: the standby takes over. A worker dies: its tasks are reassigned.
    println!("demo: killing master-1 and worker-0");
    m1.close().await?;
    if let Some(w0) = workers.first() {
        w0.close().await?;
    }
    let second = client(c.clone(), a.tasks - half, deadline).await?;
    println!("demo: {} tasks done", first.len() + second.len());
    for h in handles {
        h.abort();
    }
    Ok(())
}

#[tokio::main]
async fn main() {
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("error: {e}");
            }
            eprintln!(
                "usage: master_worker [--connect HOSTS] [--max-seconds S] \
                 (master [NAME] | worker NAME | client [TASKS] | demo [--workers N] [--tasks N])"
            );
            std::process::exit(2);
        }
    };
    let deadline = Instant::now() + a.max;
    let r = async {
        match a.role.as_str() {
            "master" => master(connect(&a.connect).await?, a.name.clone(), deadline).await,
            "worker" => worker(connect(&a.connect).await?, a.name.clone(), deadline).await,
            "client" => client(connect(&a.connect).await?, a.tasks, deadline)
                .await
                .map(|_| ()),
            _ => demo(&a, deadline).await,
        }
    }
    .await;
    if let Err(e) = r {
        eprintln!("{}: {e}", a.role);
        std::process::exit(1);
    }
}
