//! The scenarios: a lesson set up through the REST API, a teacher, students joining at a
//! given rate, and what each scenario changes (who publishes what, churn, ramp). Every run
//! is bounded by its duration (ramp: its steps) and stops early when `stop` turns true.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{StreamExt, stream};
use thiserror::Error;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::api::{Api, ApiError, PASSWORD};
use crate::clip::{ClipError, Clips};
use crate::janus::{self, JanusError};
use crate::link::Transport;
use crate::participant::{self, Plan, Record, Role, Server, SharedRecord};
use crate::peer::{self, Sending};
use crate::report::{self, RampReport, RampStep, Report, Snapshot, Window};
use crate::usage::{self, Usage, UsageSource};

/// REST calls made at once while setting up.
const SETUP_CONCURRENCY: usize = 8;
/// How long to wait for the teacher's media before students join.
const TEACHER_WAIT: Duration = Duration::from_secs(20);
/// How long participants get to leave cleanly at the end.
const LEAVE_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// One teacher publishing simulcast video and audio to N students.
    Lecture,
    /// A teacher and k students on stage, everyone receiving everyone.
    Seminar,
    /// A few speakers (audio only), many listeners.
    AudioClass,
    /// A lecture where students keep leaving and joining at a given rate.
    Churn,
    /// A lecture that adds students step by step until loss or latency crosses a bound.
    Ramp,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Lecture => "lecture",
            Scenario::Seminar => "seminar",
            Scenario::AudioClass => "audio-class",
            Scenario::Churn => "churn",
            Scenario::Ramp => "ramp",
        }
    }
}

/// Which server the run loads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// classroomd at `RunConfig::server`.
    Classroom,
    /// Janus's VideoRoom plugin through its HTTP API at this URL (`http://host:8088/janus`),
    /// for a side-by-side benchmark: lecture, churn and ramp only.
    Janus { url: String },
}

/// Everything a run needs (the command line, or a test).
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// `http://host:port` of the server; the only address the tool sends to.
    pub server: String,
    pub target: Target,
    pub admin_email: String,
    pub admin_password: String,
    pub scenario: Scenario,
    /// Students (ramp: the most it will try).
    pub students: usize,
    /// How long media flows once everyone has joined (ramp: per step).
    pub duration: Duration,
    /// Students that start joining per second.
    pub join_rate: f64,
    /// Simulcast layers the teacher sends (1 or 3).
    pub layers: usize,
    /// Seminar: students on stage. Audio class: speakers besides the teacher.
    pub stage: usize,
    /// Churn: students leaving (and as many joining) per second.
    pub churn_per_second: f64,
    /// Ramp: students added per step.
    pub ramp_step: usize,
    pub max_loss_percent: f64,
    pub max_latency_p99_ms: f64,
    pub server_pid: Option<u32>,
    /// Local address the participants' UDP sockets (or TCP connections) bind.
    pub bind_ip: IpAddr,
    /// How every participant's media reaches the SFU.
    pub transport: Transport,
    /// Print a progress line on stderr every second.
    pub progress: bool,
}

#[derive(Debug, Error)]
pub enum RunError {
    #[error("setting up the lesson: {0}")]
    Setup(#[from] ApiError),
    #[error("the built-in media clips: {0}")]
    Clips(#[from] ClipError),
    #[error("the teacher could not start: {0}")]
    Teacher(String),
    #[error("setting up the Janus room: {0}")]
    Janus(#[from] JanusError),
    #[error("the {0} scenario needs classroomd (Janus runs lecture, churn and ramp)")]
    Unsupported(&'static str),
}

/// A running participant: its record, its stop switch and its task.
pub(crate) struct Running {
    pub(crate) record: SharedRecord,
    pub(crate) stop: watch::Sender<bool>,
    pub(crate) task: JoinHandle<()>,
}

/// Where the participants go: a lesson of classroomd (with everyone signed in) or a Janus room.
pub(crate) struct Lesson {
    pub(crate) teacher: Server,
    pub(crate) students: Vec<Server>,
    /// The lesson's course (classroomd).
    pub(crate) course: Option<i64>,
}

/// Runs a scenario to its end (or until `stop`) and reports.
pub async fn run(config: RunConfig, mut stop: watch::Receiver<bool>) -> Result<Report, RunError> {
    let clips = Clips::builtin()?;
    let api = Api::new(&config.server);
    let (server_source, server_pid) = server_process(&config);
    let lesson = match &config.target {
        Target::Classroom => set_up(&api, &config).await?,
        Target::Janus { url } => {
            if !matches!(
                config.scenario,
                Scenario::Lecture | Scenario::Churn | Scenario::Ramp
            ) {
                return Err(RunError::Unsupported(config.scenario.name()));
            }
            let http = reqwest::Client::new();
            let room = janus::create_room(&http, url).await?;
            let server = Server::Janus { http, room };
            Lesson {
                teacher: server.clone(),
                students: vec![server],
                course: None,
            }
        }
    };

    let started = Instant::now();
    let server_before = server_usage(&api, server_source, server_pid).await;
    let generator_before = usage::of_pid(None);
    let mut participants: Vec<Running> = Vec::new();
    let (ask_stage, stage_requests) = mpsc::unbounded_channel();
    let stage_requests = Arc::new(tokio::sync::Mutex::new(stage_requests));

    let teacher_sending = match config.scenario {
        Scenario::AudioClass => Sending {
            audio: true,
            video_layers: 0,
        },
        _ => Sending {
            audio: true,
            video_layers: config.layers,
        },
    };
    let base_plan = Plan {
        name: "teacher".into(),
        role: Role::Teacher,
        server: lesson.teacher.clone(),
        sending: teacher_sending,
        receive: usize::from(
            config.scenario != Scenario::Lecture
                && config.scenario != Scenario::Churn
                && config.scenario != Scenario::Ramp,
        ),
        bind_ip: config.bind_ip,
        transport: config.transport,
        clips: clips.clone(),
        stage_requests: Some(stage_requests),
        ask_stage: None,
        h264: None,
    };
    participants.push(spawn(base_plan.clone()));
    wait_for_media(&participants[0].record, TEACHER_WAIT, &mut stop).await?;

    let student_plan = |index: usize| {
        let on_stage = matches!(config.scenario, Scenario::Seminar | Scenario::AudioClass)
            && index < config.stage;
        let sending = match (config.scenario, on_stage) {
            (Scenario::Seminar, true) => Sending {
                audio: true,
                video_layers: 1,
            },
            (Scenario::AudioClass, true) => Sending {
                audio: true,
                video_layers: 0,
            },
            _ => Sending {
                audio: false,
                video_layers: 0,
            },
        };
        Plan {
            name: format!("student-{index}"),
            role: Role::Student,
            // classroomd: each student's own account; Janus: the one room for everyone.
            server: lesson
                .students
                .get(index)
                .or(lesson.students.last())
                .cloned()
                .unwrap_or_else(|| lesson.teacher.clone()),
            sending,
            receive: 1,
            stage_requests: None,
            ask_stage: on_stage.then(|| ask_stage.clone()),
            ..base_plan.clone()
        }
    };
    let interval = Duration::from_secs_f64(1.0 / config.join_rate.max(0.01));
    let mut ramp = None;
    let mut window_start = None;
    let mut interrupted = false;
    let mut progress = Progress::new(config.progress, started);

    if config.scenario == Scenario::Ramp {
        let mut steps = Vec::new();
        let mut capacity = None;
        let mut students = 0;
        while students < config.students && !interrupted {
            let target = (students + config.ramp_step.max(1)).min(config.students);
            for index in students..target {
                participants.push(spawn(student_plan(index)));
                interrupted |= pause(interval, &mut stop, &participants, &mut progress).await;
            }
            students = target;
            // Let the newcomers settle, then measure one window.
            interrupted |= pause(
                Duration::from_secs(1),
                &mut stop,
                &participants,
                &mut progress,
            )
            .await;
            let before = snapshot(&participants);
            let (t0, server0) = (
                Instant::now(),
                server_usage(&api, server_source, server_pid).await,
            );
            interrupted |= pause(config.duration, &mut stop, &participants, &mut progress).await;
            let after = snapshot(&participants);
            let (t1, server1) = (
                Instant::now(),
                server_usage(&api, server_source, server_pid).await,
            );
            let step_window = Window::between(
                (t0, server0, None, &before.totals),
                (t1, server1, None, &after.totals),
            );
            let lost = after
                .totals
                .packets_lost
                .saturating_sub(before.totals.packets_lost);
            let expected = after
                .totals
                .packets_expected
                .saturating_sub(before.totals.packets_expected);
            let loss_percent = report::loss_percent(lost, expected);
            let window = after.latency_us.since(&before.latency_us);
            let latency_p99_ms = window.percentile(99.0).map(|us| us as f64 / 1000.0);
            // Janus 1.1 drops the abs-capture-time extension, so it gives no latency sample:
            // it is judged on loss alone (the report shows the latency as missing).
            let latency_ok = match latency_p99_ms {
                Some(p) => p < config.max_latency_p99_ms,
                None => config.target != Target::Classroom,
            };
            // A student is carried once it receives media in the step's window: one whose
            // join was refused (a connection cap, a full room) or who stopped receiving sends
            // no loss, so low loss among the others alone would overstate the capacity.
            let receiving = after
                .participants
                .iter()
                .enumerate()
                .filter(|(i, p)| {
                    let earlier = before
                        .participants
                        .get(*i)
                        .map_or(0, |b| b.packets_received);
                    p.role == Role::Student && p.packets_received > earlier
                })
                .count();
            let passed = expected > 0
                && receiving >= students
                && loss_percent < config.max_loss_percent
                && latency_ok;
            steps.push(RampStep {
                students,
                receiving,
                loss_percent,
                latency_p99_ms,
                server_cpu_us_per_packet: step_window.server_cpu_us_per_packet,
                passed,
            });
            if !passed {
                break;
            }
            capacity = Some(students);
        }
        ramp = Some(RampReport {
            max_loss_percent: config.max_loss_percent,
            max_latency_p99_ms: config.max_latency_p99_ms,
            limited_by_ramp: !interrupted && steps.iter().all(|s| s.passed),
            steps,
            capacity,
        });
    } else {
        for index in 0..config.students {
            participants.push(spawn(student_plan(index)));
            if pause(interval, &mut stop, &participants, &mut progress).await {
                interrupted = true;
                break;
            }
        }
        let end = Instant::now() + config.duration;
        // The steady window starts once the last students have settled (their joins and
        // handshakes are not forwarding work).
        let settle = (config.duration / 3).min(Duration::from_secs(2));
        interrupted |= pause(settle, &mut stop, &participants, &mut progress).await;
        window_start = Some((
            Instant::now(),
            server_usage(&api, server_source, server_pid).await,
            usage::of_pid(None),
            snapshot(&participants).totals,
        ));
        if config.scenario == Scenario::Churn && config.churn_per_second > 0.0 {
            let churn_every = Duration::from_secs_f64(1.0 / config.churn_per_second);
            let mut next = 0;
            let mut generation = 1;
            while !interrupted && Instant::now() + churn_every < end {
                interrupted |= pause(churn_every, &mut stop, &participants, &mut progress).await;
                // The longest-present student leaves and another session of the same
                // account joins.
                let slot = next % config.students.max(1);
                next += 1;
                if let Some(old) = participants
                    .iter()
                    .skip(1)
                    .filter(|p| participant::lock(&p.record).left_at.is_none())
                    .find(|p| {
                        participant::lock(&p.record)
                            .name
                            .starts_with(&format!("student-{slot}."))
                            || participant::lock(&p.record).name == format!("student-{slot}")
                    })
                {
                    let _ = old.stop.send(true);
                }
                let mut plan = student_plan(slot);
                plan.name = format!("student-{slot}.{generation}");
                generation += 1;
                participants.push(spawn(plan));
            }
        }
        let left = end.saturating_duration_since(Instant::now());
        interrupted |= pause(left, &mut stop, &participants, &mut progress).await;
    }

    // Measure before leaving, so the numbers cover the run and not the goodbyes.
    let duration_secs = started.elapsed().as_secs_f64();
    let server_after = server_usage(&api, server_source, server_pid).await;
    let generator_after = usage::of_pid(None);
    let snap = snapshot(&participants);
    let window = window_start.map(|(t, server, generator, totals)| {
        Window::between(
            (t, server, generator, &totals),
            (Instant::now(), server_after, generator_after, &snap.totals),
        )
    });
    for p in &participants {
        let _ = p.stop.send(true);
    }
    for p in participants {
        if tokio::time::timeout(LEAVE_WAIT, p.task).await.is_err() {
            // Its task is dropped with the runtime; nothing else holds it.
        }
    }
    progress.finish();
    Ok(report::build(
        config.scenario.name(),
        duration_secs,
        interrupted,
        config.layers,
        config.transport,
        snap,
        (server_source, server_before, server_after),
        (generator_before, generator_after),
        window,
        ramp,
    ))
}

pub(crate) fn spawn(plan: Plan) -> Running {
    let record = Arc::new(Mutex::new(Record::new(&plan)));
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(participant::run(plan, record.clone(), stopped));
    Running { record, stop, task }
}

pub(crate) fn snapshot(participants: &[Running]) -> Snapshot {
    let records: Vec<SharedRecord> = participants.iter().map(|p| p.record.clone()).collect();
    Snapshot::take(&records, Instant::now())
}

/// Waits `wait`, printing progress; returns true if the run was stopped meanwhile.
async fn pause(
    wait: Duration,
    stop: &mut watch::Receiver<bool>,
    participants: &[Running],
    progress: &mut Progress,
) -> bool {
    let end = tokio::time::Instant::now() + wait;
    loop {
        if *stop.borrow() {
            return true;
        }
        let now = tokio::time::Instant::now();
        if now >= end {
            return false;
        }
        let tick = (now + Duration::from_millis(200)).min(end);
        tokio::select! {
            changed = stop.changed() => {
                if changed.is_err() {
                    // The sender is gone: nobody can stop us any more; keep going.
                    tokio::time::sleep_until(end).await;
                    return false;
                }
            }
            () = tokio::time::sleep_until(tick) => progress.maybe_print(participants),
        }
    }
}

/// Waits until the teacher's peer is connected (media flowing), or fails with its error.
async fn wait_for_media(
    record: &SharedRecord,
    wait: Duration,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), RunError> {
    let end = Instant::now() + wait;
    while Instant::now() < end && !*stop.borrow() {
        {
            let record = participant::lock(record);
            if let Some(error) = &record.error {
                return Err(RunError::Teacher(error.clone()));
            }
            if record
                .peer
                .as_ref()
                .is_some_and(|p| peer::lock(p).connected_at.is_some())
            {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(RunError::Teacher(format!(
        "no media session within {wait:?}"
    )))
}

/// Creates the accounts, the course, its enrollments and the lesson; signs everyone in.
pub(crate) async fn set_up(api: &Api, config: &RunConfig) -> Result<Lesson, RunError> {
    let admin = api
        .login(&config.admin_email, &config.admin_password)
        .await?;
    let run = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let teacher_email = format!("lt{run}-teacher@loadtest.example.com");
    admin
        .create_user(&teacher_email, "Load Test Teacher", "teacher")
        .await?;
    let emails: Vec<String> = (0..config.students)
        .map(|i| format!("lt{run}-s{i}@loadtest.example.com"))
        .collect();
    let ids: Vec<i64> = stream::iter(emails.iter().enumerate())
        .map(|(i, email)| {
            let admin = admin.clone();
            async move {
                admin
                    .create_user(email, &format!("Student {i}"), "student")
                    .await
            }
        })
        .buffered(SETUP_CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let teacher = api.login(&teacher_email, PASSWORD).await?;
    let course = teacher.create_course(&format!("Load test {run}")).await?;
    stream::iter(ids)
        .map(|id| {
            let teacher = teacher.clone();
            async move { teacher.enroll(course, id).await }
        })
        .buffer_unordered(SETUP_CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<()>, _>>()?;
    let lesson = teacher.create_lesson(course, "Load test").await?;
    let students = stream::iter(emails)
        .map(|email| {
            let api = api.clone();
            async move {
                let api = api.login(&email, PASSWORD).await?;
                Ok::<_, ApiError>(Server::Classroom { api, lesson })
            }
        })
        .buffered(SETUP_CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    Ok(Lesson {
        teacher: Server::Classroom {
            api: teacher,
            lesson,
        },
        students,
        course: Some(course),
    })
}

/// Where the server's CPU and memory come from: its `/proc` entry when we are given its pid
/// or find the process listening on its (local) port, else classroomd's `/metrics` (Janus has
/// none).
pub(crate) fn server_process(config: &RunConfig) -> (UsageSource, Option<u32>) {
    if let Some(pid) = config.server_pid {
        return (UsageSource::Proc, Some(pid));
    }
    let (address, fallback) = match &config.target {
        Target::Classroom => (&config.server, UsageSource::Metrics),
        Target::Janus { url } => (url, UsageSource::None),
    };
    let url = reqwest::Url::parse(address).ok();
    let local = url
        .as_ref()
        .and_then(|u| u.host_str())
        .is_some_and(|h| h == "localhost" || h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()));
    let port = url.and_then(|u| u.port_or_known_default());
    match port.filter(|_| local).and_then(usage::pid_listening_on) {
        Some(pid) => (UsageSource::Proc, Some(pid)),
        None => (fallback, None),
    }
}

pub(crate) async fn server_usage(
    api: &Api,
    source: UsageSource,
    pid: Option<u32>,
) -> Option<Usage> {
    match source {
        UsageSource::Proc => usage::of_pid(pid),
        UsageSource::Metrics => usage::from_metrics(&api.metrics().await?),
        UsageSource::None => None,
    }
}

/// The progress line on stderr, at most once a second.
struct Progress {
    enabled: bool,
    started: Instant,
    last: Option<Instant>,
}

impl Progress {
    fn new(enabled: bool, started: Instant) -> Progress {
        Progress {
            enabled,
            started,
            last: None,
        }
    }

    fn maybe_print(&mut self, participants: &[Running]) {
        if !self.enabled
            || self
                .last
                .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
        {
            return;
        }
        self.last = Some(Instant::now());
        let line = snapshot(participants).progress(self.started.elapsed().as_secs_f64());
        eprint!("\r{line}\x1b[K");
    }

    fn finish(&self) {
        if self.enabled && self.last.is_some() {
            eprintln!();
        }
    }
}
