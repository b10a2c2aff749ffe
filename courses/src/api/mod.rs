//! The REST API of courses, users, lessons and replays (`/api/v1`). Handlers check who may do
//! what, parse input into domain types, and call the store. The OpenAPI document is generated
//! from the same handler annotations that build the router, so the two cannot drift apart.

mod attendance;
mod auth;
mod bulk_enroll;
mod courses;
mod documents;
pub mod error;
pub mod extract;
mod lessons;
pub mod openapi;
pub mod placement;
mod polls;
mod recording_jobs;
mod removals;
mod replays;
mod restreams;
mod setup;
mod stream_keys;
mod users;
mod webhooks;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use classroom_protocol::outbound::OutboundPolicy;
use classroom_protocol::{AccessChange, CourseId, LessonId, UserRole};
use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{RateLimits, TokenIssuer};
use crate::model::{CourseMembership, Lesson, User};
use crate::restream::RestreamBoard;
use crate::store::{Page, Store};
use error::{ApiError, ApiResult};

pub use attendance::{CourseAttendanceReport, LessonAttendanceReport, OwnAttendance};
pub use auth::LoginResponse;
pub use courses::CourseDetail;
pub use documents::{DocumentList, DocumentView, DocumentsSetup};
pub use lessons::JoinResponse;
pub use replays::{ReplayList, ReplayView};
pub use restreams::{AddDestinationRequest, DestinationResponse};
pub use setup::SetupGate;
pub use stream_keys::StreamKeyResponse;
pub use users::ImportReport;

/// Largest accepted CSV class list, the one large body the API takes.
pub const MAX_IMPORT_BYTES: usize = 4 * 1024 * 1024;

/// Largest accepted body of every other request (JSON of a few fields: a login, a course).
/// Bodies are read whole before a handler runs, so a large limit on a public route such as
/// the login lets anyone make the server hold megabytes per request.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// What the API handlers share.
#[derive(Clone, Debug)]
pub struct ApiState {
    pub store: Store,
    pub tokens: TokenIssuer,
    pub limits: Arc<RateLimits>,
    /// Whether to take the client address from `X-Forwarded-For` (behind a reverse proxy).
    pub trust_forwarded_for: bool,
    /// The RTMP URL encoders are told to publish to (`rtmp://HOST:PORT/live`), where `{host}`
    /// stands for the request's host name; `None` is `rtmp://{host}:1935/live`.
    pub rtmp_public_url: Option<String>,
    /// Live states of restream destinations, and where the API announces changed ones.
    pub restreams: RestreamBoard,
    /// Which addresses restream destinations may resolve to (`restream.allowed_networks`).
    pub restream_outbound: Arc<OutboundPolicy>,
    /// How long a request may take (`http.request_timeout_secs`); a class-list import spends
    /// at most half of it hashing passwords.
    pub request_timeout: std::time::Duration,
    /// `<data_dir>/replays`, whose files the replay links serve; `None` serves none.
    pub replays_dir: Option<std::path::PathBuf>,
    /// Course documents: where they live, the upload limit, the workers to wake; `None`
    /// keeps none.
    pub documents: Option<DocumentsSetup>,
    /// Told when a lesson's stream key is rotated: the RTMP ingest disconnects an encoder
    /// streaming with the old key. `None` without an ingest.
    pub stream_key_rotated: Option<KeyRotated>,
    /// Where the API announces a change of who may be in lessons' rooms (an account disabled,
    /// a student unenrolled, a lesson cancelled, a removed user let back in) once it is
    /// stored; the server delivers them to the live rooms, which follow at once.
    pub access_changes: tokio::sync::mpsc::UnboundedSender<AccessChange>,
    /// The TURN relays and their credentials, handed out with every join token (`[turn]`);
    /// `None` when no relay is configured.
    pub turn: Option<Arc<crate::auth::TurnCredentials>>,
    /// The first-run setup token, while the school has no admin ([`SetupGate`]).
    pub setup: SetupGate,
    /// Which node holds a lesson's room (`[cluster]`); `None`: this one, always.
    pub placement: Option<placement::Placement>,
}

impl ApiState {
    /// Tells the live rooms of a stored change of access (nobody listening is not an error:
    /// a server without rooms has nothing to follow).
    fn announce(&self, change: AccessChange) {
        let _ = self.access_changes.send(change);
    }
}

/// A hook called with the lesson whose stream key was just rotated.
#[derive(Clone)]
pub struct KeyRotated(pub Arc<dyn Fn(LessonId) + Send + Sync>);

impl std::fmt::Debug for KeyRotated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyRotated")
    }
}

/// The `/api/v1` routes with their OpenAPI description, but for [`upload_router`]'s. The CSV
/// import takes bodies up to [`MAX_IMPORT_BYTES`]; the server sets [`MAX_BODY_BYTES`] for
/// everything else.
pub fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(auth::login))
        .routes(routes!(setup::setup_status, setup::setup))
        .routes(routes!(auth::me))
        .routes(routes!(auth::change_own_password))
        .routes(routes!(users::create_user, users::list_users))
        .routes(routes!(users::get_user, users::update_user))
        .routes(routes!(users::reset_password))
        .merge(
            OpenApiRouter::new()
                .routes(routes!(users::import_users))
                .layer(DefaultBodyLimit::max(MAX_IMPORT_BYTES)),
        )
        .routes(routes!(courses::create_course, courses::list_courses))
        .routes(routes!(courses::get_course, courses::update_course))
        .routes(routes!(courses::add_teacher, courses::list_teachers))
        .routes(routes!(courses::remove_teacher))
        .routes(routes!(courses::enroll, courses::list_enrollments))
        .routes(routes!(courses::unenroll))
        .routes(routes!(bulk_enroll::bulk_enroll))
        .routes(routes!(lessons::create_lesson, lessons::list_lessons))
        .routes(routes!(lessons::get_lesson, lessons::update_lesson))
        .routes(routes!(lessons::cancel_lesson))
        .routes(routes!(lessons::join_lesson))
        .routes(routes!(removals::list_removals))
        .routes(routes!(removals::readmit))
        .routes(routes!(
            stream_keys::get_stream_key,
            stream_keys::rotate_stream_key
        ))
        .routes(routes!(
            restreams::list_destinations,
            restreams::add_destination
        ))
        .routes(routes!(restreams::remove_destination))
        .routes(routes!(
            webhooks::list_school_webhooks,
            webhooks::create_school_webhook
        ))
        .routes(routes!(webhooks::delete_school_webhook))
        .routes(routes!(
            webhooks::list_course_webhooks,
            webhooks::create_course_webhook
        ))
        .routes(routes!(webhooks::delete_course_webhook))
        .routes(routes!(replays::course_replays))
        .routes(routes!(replays::lesson_replays))
        .routes(routes!(replays::get_replay))
        .routes(routes!(replays::replay_file))
        .routes(routes!(documents::get_document, documents::delete_document))
        .routes(routes!(documents::document_file))
        .routes(routes!(recording_jobs::list_jobs))
        .routes(routes!(recording_jobs::retry_job))
        .routes(routes!(attendance::lesson_attendance))
        .routes(routes!(attendance::lesson_attendance_csv))
        .routes(routes!(attendance::course_attendance))
        .routes(routes!(attendance::course_attendance_csv))
        .routes(routes!(attendance::own_attendance))
        .routes(routes!(polls::lesson_polls))
        .routes(routes!(polls::lesson_polls_csv))
        .routes(routes!(polls::own_quiz_answers))
}

/// The document upload (and the listing at its path): its body is streamed to disk under its
/// own limit (`documents.max_upload_bytes`), checked as it arrives, and a large file over a
/// slow link takes longer than other requests may, so the server gives it its own timeout.
pub fn upload_router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(
            documents::upload_document,
            documents::course_documents
        ))
        .layer(DefaultBodyLimit::disable())
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "classroom",
        description = "Live classroom server: courses, users, lessons, join tokens and replays."
    ),
    modifiers(&BearerAuth),
    components(schemas(classroom_protocol::ErrorBody)),
    tags(
        (name = "auth", description = "Sign in and the signed-in user"),
        (name = "users", description = "School accounts (admins)"),
        (name = "courses", description = "Courses, teachers and enrollments"),
        (name = "lessons", description = "Scheduling lessons and joining their rooms"),
        (name = "replays", description = "The replay library of a course"),
        (name = "documents", description = "Course materials: documents and their pages"),
        (name = "attendance", description = "Who attended which lesson, for how long, and what they did"),
        (name = "polls", description = "Polls and quizzes of a lesson, after the room closed them"),
        (name = "webhooks", description = "Signed event notifications to a school's systems (docs/webhooks.md)"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// `?page=&per_page=` of listings.
#[derive(Debug, Clone, Copy, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// 1-based page number (default 1).
    pub page: Option<u32>,
    /// Items per page (default 50, at most 200).
    pub per_page: Option<u32>,
}

impl PageQuery {
    fn page(self) -> Page {
        Page::new(self.page.unwrap_or(1), self.per_page.unwrap_or(50))
    }
}

/// One page of a listing.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Paginated<T> {
    pub items: Vec<T>,
    /// Items across all pages.
    pub total: i64,
    pub page: u32,
    pub per_page: u32,
}

impl<T> Paginated<T> {
    fn new(paged: crate::store::Paged<T>, page: Page) -> Self {
        Paginated {
            items: paged.items,
            total: paged.total,
            page: page.page,
            per_page: page.per_page,
        }
    }
}

/// Refuses unless the user has one of `roles`.
fn require_role(user: &User, roles: &[UserRole], action: &str) -> ApiResult<()> {
    if roles.contains(&user.role) {
        return Ok(());
    }
    let allowed: Vec<_> = roles.iter().map(|r| r.as_str()).collect();
    Err(ApiError::forbidden(
        "forbidden",
        format!("only {} may {action}", allowed.join(" or ")),
    ))
}

/// The user's membership of an existing course: 404 if the course does not exist, 403 if the
/// user has nothing to do with it.
async fn course_member(
    state: &ApiState,
    user: &User,
    course: CourseId,
) -> ApiResult<CourseMembership> {
    state.store.course(course).await?;
    state.store.membership(course, user).await?.ok_or_else(|| {
        ApiError::forbidden(
            "not_a_member",
            "you are not a teacher or student of this course",
        )
    })
}

/// Refuses unless the user runs the course: a teacher of it, or an admin.
async fn course_manager(
    state: &ApiState,
    user: &User,
    course: CourseId,
) -> ApiResult<CourseMembership> {
    let membership = course_member(state, user, course).await?;
    match membership {
        CourseMembership::Admin | CourseMembership::Teacher => Ok(membership),
        CourseMembership::Student => Err(ApiError::forbidden(
            "forbidden",
            "only a teacher of this course or an admin may do this",
        )),
    }
}

/// The lesson, if the user teaches its course; `what` names what a student or an admin may
/// not see or change ("its stream key").
async fn lesson_teacher(
    state: &ApiState,
    user: &User,
    id: LessonId,
    what: &str,
) -> ApiResult<Lesson> {
    let lesson = state.store.lesson(id).await?;
    match course_member(state, user, lesson.course_id).await? {
        CourseMembership::Teacher => Ok(lesson),
        _ => Err(ApiError::forbidden(
            "forbidden",
            format!("only a teacher of this course may see or change {what}"),
        )),
    }
}

/// Refuses a lesson that has ended or was cancelled; `doing` says what can no longer be done
/// ("streamed to").
fn require_joinable(lesson: &Lesson, doing: &str) -> ApiResult<()> {
    if lesson.state.is_joinable() {
        return Ok(());
    }
    Err(ApiError::conflict(
        "lesson_over",
        format!(
            "the lesson is {}; it can no longer be {doing}",
            lesson.state.as_str()
        ),
    ))
}

fn created<T: Serialize>(value: T) -> (StatusCode, axum::Json<T>) {
    (StatusCode::CREATED, axum::Json(value))
}

/// A CSV export as a download named `filename` (attendance, poll answers; cells made safe by
/// [`crate::csv_export`]).
fn csv_download(body: String, filename: &str) -> axum::response::Response {
    use axum::http::header;
    use axum::response::IntoResponse;
    let disposition = format!("attachment; filename=\"{filename}\"");
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response()
}
