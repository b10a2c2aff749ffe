//! The signaling WebSocket and the `Origin` of the page opening it (`http.public_origins`).

use classroom_tests::run_on;

use super::*;

/// Opens `/ws` with `origin` (none: as a non-browser client); the handshake's status.
async fn handshake(server: &TestServer, origin: Option<&str>) -> u16 {
    use tokio_tungstenite::tungstenite::Error;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let url = format!("{}/ws", server.base.replacen("http://", "ws://", 1));
    let mut request = url.into_client_request().expect("a WebSocket request");
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", origin.parse().expect("a header value"));
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((_, response)) => response.status().as_u16(),
        Err(Error::Http(response)) => response.status().as_u16(),
        Err(e) => panic!("the handshake failed otherwise: {e}"),
    }
}

#[tokio::test]
async fn the_websocket_refuses_pages_of_other_sites_when_origins_are_set() {
    let server = TestServer::start(Backend::Sqlite, |config| {
        config.http.public_origins = vec![
            classroomd::origin::PublicOrigin::parse("https://school.example").expect("an origin"),
        ];
    })
    .await
    .expect("a SQLite server");
    assert_eq!(
        handshake(&server, Some("https://school.example")).await,
        101
    );
    assert_eq!(
        handshake(&server, Some("https://SCHOOL.example:443")).await,
        101
    );
    // The load tester and scripts send no Origin: not a browser page, let in.
    assert_eq!(handshake(&server, None).await, 101);
    for other in [
        "https://evil.example",
        "http://school.example",
        "https://school.example.evil.example",
        "null",
    ] {
        assert_eq!(handshake(&server, Some(other)).await, 403, "{other}");
    }
    server.stop().await;
}

#[tokio::test]
async fn without_public_origins_the_websocket_takes_any_origin() {
    run_on(Backend::Sqlite, |server| async move {
        assert_eq!(handshake(&server, Some("https://evil.example")).await, 101);
        assert_eq!(handshake(&server, None).await, 101);
        server
    })
    .await;
}
