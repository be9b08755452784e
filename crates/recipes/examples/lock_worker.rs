//! A lock contender for the multi-process lock test (`tests/multiprocess.rs`): connects to
//! `CORRAL_MP_CONNECT`, then `ROUNDS` times takes the mutex at `/mp-lock`, claims the
//! marker file `holder` in `CORRAL_MP_DIR` with `create_new` (a second holder records a
//! `VIOLATION`), holds it briefly, logs its id and releases.

use corral_client::ClientOptions;
use corral_recipes::lock::Mutex;
use std::path::PathBuf;
use std::time::Duration;

const ROUNDS: usize = 5;

fn main() {
    let cs = std::env::var("CORRAL_MP_CONNECT").expect("CORRAL_MP_CONNECT");
    let dir = PathBuf::from(std::env::var("CORRAL_MP_DIR").expect("CORRAL_MP_DIR"));
    let id = std::env::var("CORRAL_MP_ID").expect("CORRAL_MP_ID");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let zk = ClientOptions::new()
            .session_timeout(Duration::from_secs(6))
            .connect(&cs)
            .await
            .expect("connect");
        for _ in 0..ROUNDS {
            let mut m = Mutex::new(&zk, "/mp-lock").data(id.as_bytes());
            assert!(m
                .try_acquire(Duration::from_secs(60))
                .await
                .expect("acquire"));
            let marker = dir.join("holder");
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&marker)
            {
                Ok(_) => {}
                Err(e) => {
                    let _ = std::fs::write(dir.join("VIOLATION"), format!("{id}: {e}"));
                }
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
            let _ = std::fs::remove_file(&marker);
            use std::io::Write as _;
            let mut log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join("log"))
                .expect("log");
            writeln!(log, "{id}").expect("write log");
            drop(log);
            m.release().await.expect("release");
        }
        zk.close().await.expect("close");
    });
}
