//! The HTTP router of classroomd: the REST API, the signaling WebSocket, health and
//! readiness, metrics, the OpenAPI document, JSON answers for unknown routes, and the
//! middleware around them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{DefaultBodyLimit, FromRef, MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use classroom_courses::Db;
use classroom_courses::api::error::ApiError;
use classroom_courses::api::extract::CurrentUser;
use classroom_courses::api::{self, ApiState, MAX_BODY_BYTES};
use serde::{Deserialize, Serialize};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::cluster::ClusterHandle;
use crate::live::{self, LiveState};
use crate::metrics::Metrics;
use crate::{whep, whip};

/// What the server-level handlers share.
#[derive(Clone, Debug)]
pub struct AppState {
    pub api: ApiState,
    pub db: Db,
    pub metrics: Arc<Metrics>,
    pub live: LiveState,
    /// The OpenAPI document, rendered once at start.
    pub openapi_json: Arc<String>,
    /// The node registry, when this node is one of a cluster (`cluster.redis_url`).
    pub cluster: Option<ClusterHandle>,
}

impl FromRef<AppState> for LiveState {
    fn from_ref(state: &AppState) -> LiveState {
        state.live.clone()
    }
}

impl FromRef<AppState> for ApiState {
    fn from_ref(state: &AppState) -> ApiState {
        state.api.clone()
    }
}

/// The whole router, and the OpenAPI document describing it.
pub fn router(
    api: ApiState,
    db: Db,
    metrics: Arc<Metrics>,
    live: LiveState,
    cluster: Option<ClusterHandle>,
    request_timeout: Duration,
    upload_timeout: Duration,
) -> (axum::Router, utoipa::openapi::OpenApi) {
    let api_routes = api::router()
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            request_timeout,
        ))
        .merge(api::upload_router().layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            upload_timeout,
        )))
        .with_state(api.clone());
    let (router, mut openapi) = OpenApiRouter::<AppState>::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics_text))
        .routes(routes!(openapi_document))
        .routes(routes!(cluster_status))
        .routes(routes!(live::signaling_socket))
        .merge(
            // Offers are larger than API bodies (a browser's is about 10 KB).
            OpenApiRouter::new()
                .routes(routes!(whip::whip_publish, whip::whip_options))
                .routes(routes!(
                    whip::whip_delete,
                    whip::whip_patch,
                    whip::whip_session_options
                ))
                .routes(routes!(whep::whep_play, whep::whep_options))
                .routes(routes!(
                    whep::whep_delete,
                    whep::whep_patch,
                    whep::whep_session_options
                ))
                .layer(DefaultBodyLimit::max(whip::MAX_OFFER_BYTES)),
        )
        .merge(api_routes)
        .split_for_parts();
    api::openapi::declare_common_responses(&mut openapi, "/api/v1");
    let openapi_json = Arc::new(openapi.to_json().unwrap_or_else(|_| "{}".into()));
    let cluster_for_headers = cluster.clone();
    let state = AppState {
        api,
        db,
        metrics: metrics.clone(),
        live,
        openapi_json,
        cluster,
    };
    let router = router
        // Node to node, not part of the public API (not in the OpenAPI document).
        .route(
            crate::cluster::link::PATH,
            axum::routing::get(crate::cluster::link::home::accept),
        )
        .merge(crate::web::router())
        .fallback(unknown_route)
        .method_not_allowed_fallback(wrong_method)
        // Small bodies everywhere; the CSV import sets its own larger limit on its route.
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(metrics, record_request))
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request| {
            // The path only: query strings and headers may carry secrets.
            tracing::info_span!("http", method = %request.method(), path = %request.uri().path())
        }))
        // Outermost: every answer carries them, whichever layer produced it.
        .layer(middleware::map_response_with_state(
            cluster_for_headers,
            crate::web::security_headers,
        ))
        .with_state(state);
    (router, openapi)
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Status {
    pub status: String,
}

/// Alive: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = Status)))]
async fn healthz() -> Json<Status> {
    Json(Status {
        status: "ok".into(),
    })
}

/// Ready: the database answers, and in a cluster Redis too (without Redis a node serves the
/// lessons it has, but no new lesson can be placed).
#[utoipa::path(
    get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, body = Status),
        (status = 503, description = "The database (or, in a cluster, Redis) is unreachable", body = classroom_protocol::ErrorBody),
    )
)]
async fn readyz(State(state): State<AppState>) -> Result<Json<Status>, ApiError> {
    if !state.db.is_reachable().await {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "database_unreachable",
            "the database does not answer; check that it is running and reachable",
        ));
    }
    if state.cluster.as_ref().is_some_and(|c| !c.redis_up()) {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "redis_unreachable",
            "Redis does not answer: lessons on this node go on, new ones wait until it is back",
        ));
    }
    Ok(Json(Status {
        status: "ready".into(),
    }))
}

/// The nodes of the cluster as this node sees them (admins).
#[utoipa::path(
    get, path = "/api/v1/cluster", tag = "operations", security(("bearer" = [])),
    responses(
        (status = 200, description = "`{this_node, redis: up|down, nodes: [{id, http_url, media, state, load, heartbeat_ms, online, heartbeat_age_ms, offline_times}], offline_alarms, relayed_participants, node_links: {running, audio_packets_sent, video_packets_sent, packets_received, malformed_controls}}`; `clustered: false` on a single node", body = Object),
        (status = 401, description = "Missing, bad or expired token", body = classroom_protocol::ErrorBody),
        (status = 403, description = "Not an admin", body = classroom_protocol::ErrorBody),
    )
)]
async fn cluster_status(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
) -> Result<Json<serde_json::Value>, ApiError> {
    if user.role != classroom_protocol::UserRole::Admin {
        return Err(ApiError::forbidden(
            "forbidden",
            "only admins may see the cluster",
        ));
    }
    Ok(Json(match state.live.cluster_status() {
        None => serde_json::json!({"clustered": false}),
        Some(cluster) => {
            let mut status = serde_json::to_value(cluster).unwrap_or_default();
            status["clustered"] = serde_json::Value::Bool(true);
            status
        }
    }))
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(
    get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"))
)]
async fn metrics_text(State(state): State<AppState>) -> impl IntoResponse {
    let pool = state.db.pool();
    state
        .metrics
        .db_pool_observed(state.db.connections_in_use(), pool.size());
    // A stopped SFU leaves its counters out rather than failing the scrape.
    let workers = state.live.media.worker_stats().await.ok();
    let sfu = workers.as_ref().map(|workers| {
        let mut total = classroom_media::SfuStats::default();
        for worker in workers {
            total.add(&worker.sfu);
        }
        total
    });
    if let Some(workers) = &workers {
        state.metrics.media_workers_observed(workers);
    }
    if let Some(cluster) = state.live.cluster_status() {
        state.metrics.cluster_observed(&cluster);
    }
    let rooms = &state.live.rooms;
    state
        .metrics
        .live_observed(rooms.open_rooms(), rooms.stats(), sfu);
    let restreams = &state.api.restreams;
    state
        .metrics
        .restream_observed(&restreams.count_by_state(), restreams.restarts_total());
    let jobs = state.api.store.recording_job_counts().await.ok();
    state
        .metrics
        .recorder_observed(state.live.recorder.snapshot(), jobs);
    if let Some(ingest) = &state.live.ingest {
        state.metrics.ingest_observed(&ingest.stats());
    }
    let live = &state.live;
    state
        .metrics
        .whip_observed(live.whip.encoders(&live.media), live.whep.players());
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

/// This document.
#[utoipa::path(
    get, path = "/api/v1/openapi.json", tag = "operations",
    responses((status = 200, description = "OpenAPI 3 document", content_type = "application/json"))
)]
async fn openapi_document(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        state.openapi_json.as_str().to_owned(),
    )
}

async fn unknown_route(request: Request) -> ApiError {
    ApiError::not_found(&format!(
        "route {} {}",
        request.method(),
        request.uri().path()
    ))
}

async fn wrong_method(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} is not allowed on {}",
            request.method(),
            request.uri().path()
        ),
    )
}

async fn record_request(
    State(metrics): State<Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let response = next.run(request).await;
    metrics.http_request_finished(
        method.as_str(),
        &route,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}
