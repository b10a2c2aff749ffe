//! A `classroomd` on free loopback ports, for the end-to-end tests that must kill a server
//! process (`kill -9`), which an in-process server cannot show. Usage:
//! `test-server DATA_DIR [CONFIG_JSON]`; it prints `LISTENING http://ADDR` once it serves, and
//! runs until killed. The recorder's pictures are small, as in the other recorder tests.
//! `CONFIG_JSON`, a file holding a whole configuration as JSON (a node of a test's cluster,
//! `classroom_tests::cluster::child_node`), replaces the built-in one but for the data
//! directory.

use std::path::PathBuf;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let data_dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .ok_or_else(|| anyhow::anyhow!("usage: test-server DATA_DIR"))?;
    if let Some(file) = std::env::args_os().nth(2) {
        let json = std::fs::read_to_string(&file)?;
        let mut config: classroomd::Config = serde_json::from_str(&json)?;
        config.data_dir = data_dir;
        let server = classroomd::start(&config).await?;
        println!("LISTENING http://{}", server.addr);
        std::future::pending::<()>().await;
        return Ok(());
    }
    let mut config = classroomd::Config {
        data_dir,
        ..classroomd::Config::default()
    };
    config.http.addr = ([127, 0, 0, 1], 0).into();
    config.media.udp_addr = ([127, 0, 0, 1], 0).into();
    config.media.tcp_addr = Some(([127, 0, 0, 1], 0).into());
    config.media.workers = classroom_tests::media_workers();
    // Not the default 1935: another server on this machine may hold it.
    config.rtmp.addr = ([127, 0, 0, 1], 0).into();
    // A small picture keeps ffmpeg quick on a shared 2-core machine.
    config.recorder.height = 360;
    let server = classroomd::start(&config).await?;
    println!("LISTENING http://{}", server.addr);
    std::future::pending::<()>().await;
    Ok(())
}
