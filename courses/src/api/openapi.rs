//! The refusals every route can give because of its shape, added to the OpenAPI document in
//! one place so that no route's annotation can forget one: a JSON body can be malformed (400),
//! too large (413), of another media type (415) or not fit its schema (422); query
//! parameters can be wrong (400); an id in the path can name nothing (404); a bearer token
//! can be missing or stale (401); any request can outlast `http.request_timeout_secs` (408)
//! or find the database busy (503). A route's own annotation still describes its own answers
//! (409 for a taken email, 403 for a missing right); a description given there is kept.

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::{Content, OpenApi, Ref, RefOr, Response};

/// Adds the shape-given responses to every operation under `prefix` (`/api/v1`).
pub fn declare_common_responses(doc: &mut OpenApi, prefix: &str) {
    for (path, item) in doc.paths.paths.iter_mut() {
        if !path.starts_with(prefix) {
            continue;
        }
        let operations = [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ];
        for operation in operations.into_iter().flatten() {
            declare(operation);
        }
    }
}

fn declare(operation: &mut Operation) {
    let json_body = operation
        .request_body
        .as_ref()
        .is_some_and(|body| match body {
            RefOr::T(body) => body.content.contains_key("application/json"),
            RefOr::Ref(_) => true,
        });
    let has = |place: ParameterIn| {
        operation
            .parameters
            .iter()
            .flatten()
            .any(|parameter| match parameter {
                RefOr::T(parameter) => parameter.parameter_in == place,
                RefOr::Ref(_) => false,
            })
    };
    let (query, path) = (has(ParameterIn::Query), has(ParameterIn::Path));
    let authenticated = operation
        .security
        .as_ref()
        .is_some_and(|requirements| !requirements.is_empty());

    let mut add = |status: &str, description: &str| {
        operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| RefOr::T(error_response(description)));
    };
    if json_body {
        add("400", "The body is not valid JSON (`malformed_json`)");
        add("413", "The body is too large (`body_too_large`)");
        add(
            "415",
            "The body is not sent as `Content-Type: application/json` (`unsupported_media_type`)",
        );
        add(
            "422",
            "A field is missing, unknown, of the wrong type or refused (`invalid_body`, `invalid_field`; `field` names it)",
        );
    }
    if query {
        add("400", "A query parameter is wrong (`invalid_query`)");
    }
    if path {
        add("404", "Nothing exists at this path (`not_found`)");
    }
    if authenticated {
        add(
            "401",
            "No, a bad or an expired session token, or the account is disabled",
        );
    }
    add(
        "503",
        "The database is busy (`database_busy`, with `Retry-After`)",
    );
    operation
        .responses
        .responses
        .entry("408".to_owned())
        .or_insert_with(|| {
            RefOr::T(Response::new(
                "The request took longer than `http.request_timeout_secs` (no body)",
            ))
        });
}

/// A response carrying the JSON error body.
fn error_response(description: &str) -> Response {
    let mut response = Response::new(description);
    response.content.insert(
        "application/json".to_owned(),
        RefOr::T(Content::new(Some(Ref::from_schema_name("ErrorBody")))),
    );
    response
}

#[cfg(test)]
mod tests {
    use utoipa::openapi::path::Operation;

    use super::*;

    fn statuses(operation: Option<&Operation>) -> Vec<String> {
        let operation = operation.expect("the operation is documented");
        operation.responses.responses.keys().cloned().collect()
    }

    #[test]
    fn every_route_declares_the_refusals_its_shape_allows() {
        let (_, mut doc) = super::super::router().split_for_parts();
        declare_common_responses(&mut doc, "/api/v1");
        let path = |p: &str| doc.paths.paths.get(p).expect("the path is documented");
        // A JSON body, no token.
        let login = statuses(path("/api/v1/auth/login").post.as_ref());
        for status in ["400", "413", "415", "422", "408", "503", "429"] {
            assert!(
                login.iter().any(|s| s == status),
                "login {status}: {login:?}"
            );
        }
        // Query parameters and a token.
        let users = statuses(path("/api/v1/users").get.as_ref());
        for status in ["400", "401", "403"] {
            assert!(
                users.iter().any(|s| s == status),
                "users {status}: {users:?}"
            );
        }
        // An id in the path, a JSON body and a token.
        let rename = statuses(path("/api/v1/users/{id}").patch.as_ref());
        for status in ["400", "401", "404", "413", "415", "422"] {
            assert!(
                rename.iter().any(|s| s == status),
                "rename {status}: {rename:?}"
            );
        }
        // No body: no body refusals.
        let me = statuses(path("/api/v1/me").get.as_ref());
        assert!(!me.iter().any(|s| s == "415"), "{me:?}");
    }
}
