//! A small school to test against: accounts of every role and one course.

use classroom_protocol::UserRole;
use serde_json::{Value, json};

use crate::{Client, TestServer};

/// A small school: an admin, two teachers, two students and one course taught by the first
/// teacher with the first student enrolled.
pub struct School {
    pub admin: Client,
    pub teacher: Client,
    pub teacher_id: i64,
    pub other_teacher: Client,
    pub other_teacher_id: i64,
    pub student: Client,
    pub student_id: i64,
    pub outsider: Client,
    pub outsider_id: i64,
    pub course_id: i64,
}

impl School {
    pub async fn new(server: &TestServer) -> School {
        let (admin, _) = server
            .user(UserRole::Admin, "admin@school.edu", "Ada Admin")
            .await;
        let (teacher, t) = server
            .user(UserRole::Teacher, "tess@school.edu", "Tess Teacher")
            .await;
        let (other_teacher, ot) = server
            .user(UserRole::Teacher, "otto@school.edu", "Otto Teacher")
            .await;
        let (student, s) = server
            .user(UserRole::Student, "sam@school.edu", "Sam Student")
            .await;
        let (outsider, o) = server
            .user(UserRole::Student, "olga@school.edu", "Olga Outsider")
            .await;
        let course = teacher
            .post(
                "/api/v1/courses",
                json!({"title": "Algebra 7b", "description": "Linear equations"}),
            )
            .await;
        let course_id = id(course.expect(201));
        teacher
            .post(
                &format!("/api/v1/courses/{course_id}/enrollments"),
                json!({"user_id": id(&s)}),
            )
            .await
            .expect(201);
        School {
            admin,
            teacher,
            teacher_id: id(&t),
            other_teacher,
            other_teacher_id: id(&ot),
            student,
            student_id: id(&s),
            outsider,
            outsider_id: id(&o),
            course_id,
        }
    }

    /// Schedules a lesson in the school's course and returns its id.
    pub async fn lesson(&self, title: &str) -> i64 {
        let reply = self
            .teacher
            .post(
                &format!("/api/v1/courses/{}/lessons", self.course_id),
                json!({"title": title, "starts_at": "2030-01-07T09:00:00Z", "ends_at": "2030-01-07T09:45:00Z"}),
            )
            .await;
        id(reply.expect(201))
    }
}

#[track_caller]
pub fn id(value: &Value) -> i64 {
    value["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("no id in {value}"))
}

/// A join token for `lesson`, from the REST API as `client`.
pub async fn join_token(client: &Client, lesson: i64) -> String {
    let reply = client
        .post_empty(&format!("/api/v1/lessons/{lesson}/join"))
        .await;
    reply.expect(200)["token"]
        .as_str()
        .expect("a token")
        .to_string()
}
