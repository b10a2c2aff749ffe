//! Course materials end to end, with real LibreOffice and poppler: a teacher uploads
//! documents, the job queue's workers make their pages, the course's members see them and
//! nobody else does. Hostile and broken files (damaged, locked with a password, a zip bomb
//! dressed as a PPTX, 2,000 pages, a conversion that hangs) each fail with a reason the
//! teacher sees, within the limits, while the queue goes on. Every test runs on SQLite and on
//! PostgreSQL.

mod replay;
mod slides;

use std::time::{Duration, Instant};

use classroom_tests::documents::{
    corrupt_pdf, docx, encrypted_pdf, pdf, pdf_of, png_size, pptx, zip_bomb,
};
use classroom_tests::school::{School, id};
use classroom_tests::{Client, TestServer, both_backends};
use reqwest::Method;
use serde_json::{Value, json};

const PDF: &str = "application/pdf";
const DOCX: &str = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";
const PPTX: &str = "application/vnd.openxmlformats-officedocument.presentationml.presentation";

async fn upload(client: &Client, course: i64, name: &str, kind: &str, bytes: Vec<u8>) -> Value {
    let path = format!("/api/v1/courses/{course}/documents?name={name}");
    client
        .send_raw(Method::POST, &path, kind, bytes)
        .await
        .expect(201)
        .clone()
}

/// Waits until the document is no longer processing; returns it.
async fn settled(client: &Client, document: i64, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let reply = client.get(&format!("/api/v1/documents/{document}")).await;
        let body = reply.expect(200).clone();
        if body["state"] != "processing" {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "document {document} still processing after {within:?}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn fetch(server: &TestServer, url: &str) -> (u16, Vec<u8>) {
    let response = reqwest::get(format!("{}{url}", server.base))
        .await
        .expect("the server answers");
    let status = response.status().as_u16();
    (
        status,
        response
            .bytes()
            .await
            .map(|b| b.to_vec())
            .unwrap_or_default(),
    )
}

both_backends!(a_pdf_becomes_pages_for_the_members, |server| async move {
    let school = School::new(&server).await;
    let course = school.course_id;
    let pages: Vec<String> = ["Linear equations", "Two unknowns", "Homework"]
        .map(String::from)
        .to_vec();
    let created = upload(&school.teacher, course, "Week%201.pdf", PDF, pdf(&pages)).await;
    assert_eq!(created["state"], "processing");
    assert_eq!(created["title"], "Week 1");
    assert_eq!(created["source"], "pdf");
    let document = id(&created);
    let ready = settled(&school.teacher, document, Duration::from_secs(60)).await;
    assert_eq!(ready["state"], "ready", "{ready}");
    assert_eq!(ready["pages"], 3);

    // The student sees it with a link to its pages; the outsider sees nothing.
    let listed = school
        .student
        .get(&format!("/api/v1/courses/{course}/documents"))
        .await;
    let item = listed.expect(200)["items"][0].clone();
    assert_eq!(item["id"], document);
    let files = item["files_url"]
        .as_str()
        .expect("a files link")
        .to_string();
    school
        .outsider
        .get(&format!("/api/v1/courses/{course}/documents"))
        .await
        .expect_error(403, "not_a_member");
    school
        .outsider
        .get(&format!("/api/v1/documents/{document}"))
        .await
        .expect_error(403, "not_a_member");

    let (status, page) = fetch(&server, &format!("{files}page-2.png")).await;
    assert_eq!(status, 200);
    assert_eq!(png_size(&page).map(|(w, _)| w), Some(1600));
    let (status, thumb) = fetch(&server, &format!("{files}thumb-3.png")).await;
    assert_eq!(status, 200);
    assert_eq!(png_size(&thumb).map(|(w, _)| w), Some(320));
    let (status, text) = fetch(&server, &format!("{files}text.json")).await;
    assert_eq!(status, 200);
    let text: Vec<String> = serde_json::from_slice(&text).expect("text per page");
    assert_eq!(text.len(), 3);
    assert!(text[1].contains("Two unknowns"), "{text:?}");
    for missing in ["page-4.png", "source.pdf", "..%2Fsource.pdf", "pdfinfo.out"] {
        let (status, _) = fetch(&server, &format!("{files}{missing}")).await;
        assert_eq!(status, 404, "{missing}");
    }
    // Another document's id with this link's token: refused.
    let other = files.replacen(&format!("/documents/{document}/"), "/documents/9999/", 1);
    assert_eq!(fetch(&server, &format!("{other}page-1.png")).await.0, 404);

    // A student cannot upload or delete; unenrolled, the link stops working at once.
    school
        .student
        .send_raw(
            Method::POST,
            &format!("/api/v1/courses/{course}/documents"),
            PDF,
            pdf_of(1),
        )
        .await
        .expect_error(403, "forbidden");
    school
        .student
        .delete(&format!("/api/v1/documents/{document}"))
        .await
        .expect_error(403, "forbidden");
    school
        .teacher
        .delete(&format!(
            "/api/v1/courses/{course}/enrollments/{}",
            school.student_id
        ))
        .await
        .expect(204);
    assert_eq!(fetch(&server, &format!("{files}page-1.png")).await.0, 403);

    // The teacher deletes it: gone from the list, its files from the disk.
    let folder = server
        .data_dir()
        .join("documents")
        .join(document.to_string());
    assert!(folder.join("pages").is_dir());
    school
        .teacher
        .delete(&format!("/api/v1/documents/{document}"))
        .await
        .expect(204);
    assert!(!folder.exists());
    let listed = school
        .teacher
        .get(&format!("/api/v1/courses/{course}/documents"))
        .await;
    assert_eq!(listed.expect(200)["items"], json!([]));
    school
        .teacher
        .get(&format!("/api/v1/documents/{document}"))
        .await
        .expect_error(404, "not_found");
    server
});

both_backends!(
    uploads_are_refused_by_kind_and_size,
    tune = |config| config.documents.max_upload_bytes = 64 * 1024,
    |server| async move {
        let school = School::new(&server).await;
        let path = format!("/api/v1/courses/{}/documents", school.course_id);
        let reply = school
            .teacher
            .send_raw(Method::POST, &path, "text/plain", b"hello".to_vec())
            .await;
        reply.expect_error(415, "unsupported_document");
        let reply = school
            .teacher
            .send_raw(Method::POST, &path, PDF, vec![b'x'; 65 * 1024])
            .await;
        reply.expect_error(413, "document_too_large");
        let reply = school
            .teacher
            .send_raw(Method::POST, &path, PDF, Vec::new())
            .await;
        reply.expect_error(422, "empty_document");
        // By name when the browser sends no type.
        let named = format!("{path}?name=notes.PDF&title=Notes");
        let reply = school
            .teacher
            .send_raw(Method::POST, &named, "application/octet-stream", pdf_of(1))
            .await;
        assert_eq!(reply.expect(201)["title"], "Notes");
        // Nothing of the refused uploads is left on disk.
        let leftovers: Vec<_> = std::fs::read_dir(server.data_dir().join("documents"))
            .expect("the documents folder")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".part"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        server
    }
);

both_backends!(
    office_files_are_converted_by_libreoffice,
    |server| async move {
        let school = School::new(&server).await;
        let bytes = docx(&["Handout for week two", "Answers on the second page"]);
        let created = upload(
            &school.teacher,
            school.course_id,
            "handout.docx",
            DOCX,
            bytes,
        )
        .await;
        let ready = settled(&school.teacher, id(&created), Duration::from_secs(120)).await;
        assert_eq!(ready["state"], "ready", "{ready}");
        assert_eq!(ready["pages"], 2);
        let files = ready["files_url"].as_str().expect("a link").to_string();
        let (status, text) = fetch(&server, &format!("{files}text.json")).await;
        assert_eq!(status, 200);
        let text: Vec<String> = serde_json::from_slice(&text).expect("text per page");
        assert!(text[0].contains("Handout for week two"), "{text:?}");
        assert!(text[1].contains("second page"), "{text:?}");
        let (status, pdf) = fetch(&server, &format!("{files}document.pdf")).await;
        assert_eq!(status, 200);
        assert!(pdf.starts_with(b"%PDF-"));

        let bytes = pptx(&["Photosynthesis", "Light reactions", "The Calvin cycle"]);
        let created = upload(&school.teacher, school.course_id, "deck.pptx", PPTX, bytes).await;
        let ready = settled(&school.teacher, id(&created), Duration::from_secs(120)).await;
        assert_eq!(ready["state"], "ready", "{ready}");
        assert_eq!(ready["pages"], 3);
        let files = ready["files_url"].as_str().expect("a link").to_string();
        let (_, text) = fetch(&server, &format!("{files}text.json")).await;
        let text: Vec<String> = serde_json::from_slice(&text).expect("text per page");
        assert!(text[2].contains("Calvin"), "{text:?}");
        let (status, page) = fetch(&server, &format!("{files}page-1.png")).await;
        assert_eq!(status, 200);
        // A 4:3 slide 1600 wide.
        assert_eq!(png_size(&page), Some((1600, 1200)));
        server
    }
);

// Each bad file fails with its reason, none is retried, and a good one queued after them
// is ready too.
both_backends!(
    bad_documents_fail_with_a_reason,
    tune = |config| config.recorder.workers = 2,
    |server| async move {
        let school = School::new(&server).await;
        let course = school.course_id;
        let started = Instant::now();
        let cases = [
            ("damaged.pdf", PDF, corrupt_pdf(), "damaged"),
            ("locked.pdf", PDF, encrypted_pdf(), "password"),
            ("bomb.pptx", PPTX, zip_bomb(1 << 30), "zip bomb"),
            ("long.pdf", PDF, pdf_of(2000), "2000 pages; at most 500"),
        ];
        let mut failing = Vec::new();
        for (name, kind, bytes, reason) in cases {
            let created = upload(&school.teacher, course, name, kind, bytes).await;
            failing.push((id(&created), reason));
        }
        let good = id(&upload(&school.teacher, course, "good.pdf", PDF, pdf_of(2)).await);
        for (document, reason) in failing {
            let failed = settled(&school.teacher, document, Duration::from_secs(60)).await;
            assert_eq!(failed["state"], "failed", "{failed}");
            let error = failed["error"].as_str().unwrap_or("");
            assert!(error.contains(reason), "{reason}: {error}");
            assert_eq!(failed["files_url"], Value::Null);
        }
        let ready = settled(&school.teacher, good, Duration::from_secs(60)).await;
        assert_eq!(ready["state"], "ready", "{ready}");
        println!("five documents settled in {:?}", started.elapsed());
        // Failed for good at the first attempt: bad input is not retried.
        let jobs = school
            .admin
            .get("/api/v1/recording-jobs?state=failed")
            .await;
        let jobs = jobs.expect(200)["items"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(jobs.len(), 4);
        assert!(
            jobs.iter()
                .all(|j| j["kind"] == "document" && j["attempts"] == 1)
        );
        server
    }
);

// A conversion that hangs is stopped at the time limit with everything it started, and the
// other worker meanwhile prepares what was queued after it.
both_backends!(
    a_hanging_conversion_is_stopped_at_the_time_limit,
    tune = |config| {
        config.recorder.workers = 2;
        config.documents.time_limit_secs = 4;
        let script = config.data_dir.join("hanging-soffice");
        // A converter that never finishes, with a child of its own to kill too.
        let body = format!(
            "#!/bin/sh\nsleep 600 &\necho $! > {}\nwait\n",
            config.data_dir.join("sleeper.pid").display()
        );
        std::fs::write(&script, body).expect("the script");
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("executable");
        config.documents.soffice = script;
    },
    |server| async move {
        let school = School::new(&server).await;
        let course = school.course_id;
        let started = Instant::now();
        let slides = docx(&["Would hang"]);
        let hanging = id(&upload(&school.teacher, course, "slides.pptx", PPTX, slides).await);
        let good = id(&upload(&school.teacher, course, "notes.pdf", PDF, pdf_of(3)).await);
        let ready = settled(&school.teacher, good, Duration::from_secs(30)).await;
        assert_eq!(ready["state"], "ready", "{ready}");
        let hang = school
            .teacher
            .get(&format!("/api/v1/documents/{hanging}"))
            .await;
        assert_eq!(
            hang.expect(200)["state"],
            "processing",
            "the PDF was ready before the time limit stopped the hanging conversion"
        );
        let failed = settled(&school.teacher, hanging, Duration::from_secs(30)).await;
        let took = started.elapsed();
        assert_eq!(failed["state"], "failed", "{failed}");
        let error = failed["error"].as_str().unwrap_or("");
        assert!(error.contains("longer than 4 seconds"), "{error}");
        assert!(took < Duration::from_secs(12), "stopped after {took:?}");
        let pid = std::fs::read_to_string(server.data_dir().join("sleeper.pid"))
            .expect("the converter started its child");
        let stat = format!("/proc/{}/stat", pid.trim());
        let gone = match std::fs::read_to_string(&stat) {
            Err(_) => true,
            Ok(s) => s.contains(") Z "),
        };
        assert!(gone, "the converter's child survived: {stat}");
        server
    }
);
