//! Grants: what a participant may do in a room. Carried by the join token and changed live by
//! the room (a student brought on stage is granted publish; taken off stage, it is revoked).

use serde::{Deserialize, Serialize};

use crate::ParticipantRole;

/// A source of media a participant may publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TrackSource {
    Camera,
    Microphone,
    Screen,
    ScreenAudio,
    /// An external encoder (OBS, hardware) publishing over RTMP.
    Encoder,
}

impl TrackSource {
    pub const ALL: [TrackSource; 5] = [
        TrackSource::Camera,
        TrackSource::Microphone,
        TrackSource::Screen,
        TrackSource::ScreenAudio,
        TrackSource::Encoder,
    ];

    /// The wire name (`camera`, `screen_audio`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            TrackSource::Camera => "camera",
            TrackSource::Microphone => "microphone",
            TrackSource::Screen => "screen",
            TrackSource::ScreenAudio => "screen_audio",
            TrackSource::Encoder => "encoder",
        }
    }
}

/// What a participant may do in one room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Grants {
    /// May enter the room at all.
    pub join: bool,
    /// May receive others' media.
    pub subscribe: bool,
    /// Sources this participant may publish; empty means none.
    pub publish: Vec<TrackSource>,
    /// May send chat messages (subject to the room's chat lock).
    pub chat: bool,
    /// May run the room: stage, mute, remove, lock chat, end the lesson.
    pub moderate: bool,
    /// May start, pause and stop the recording.
    pub record: bool,
}

impl Grants {
    /// The grants a participant of this role starts with when joining.
    pub fn for_role(role: ParticipantRole) -> Self {
        match role {
            ParticipantRole::Teacher | ParticipantRole::Assistant => Grants {
                join: true,
                subscribe: true,
                publish: TrackSource::ALL.to_vec(),
                chat: true,
                moderate: true,
                record: role == ParticipantRole::Teacher,
            },
            ParticipantRole::Student => Grants {
                join: true,
                subscribe: true,
                publish: Vec::new(),
                chat: true,
                moderate: false,
                record: false,
            },
            ParticipantRole::Observer => Grants {
                join: true,
                subscribe: true,
                publish: Vec::new(),
                chat: false,
                moderate: false,
                record: false,
            },
        }
    }

    pub fn may_publish(&self, source: TrackSource) -> bool {
        self.publish.contains(&source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn students_start_without_publish_and_teachers_moderate() {
        let student = Grants::for_role(ParticipantRole::Student);
        assert!(student.subscribe && student.chat);
        assert!(!student.may_publish(TrackSource::Camera));
        assert!(!student.moderate);

        let teacher = Grants::for_role(ParticipantRole::Teacher);
        assert!(teacher.may_publish(TrackSource::Screen));
        assert!(teacher.moderate && teacher.record);
    }
}
