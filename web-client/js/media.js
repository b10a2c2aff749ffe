// The media side of a participant: one RTCPeerConnection to the SFU. We offer our own tracks
// (sendonly, each labelled with its source: camera, microphone, screen) and receive slots
// (recvonly); the SFU sends `offer` when it needs more m-lines and `track` to say whose media,
// from which source, arrives on which m-line. A reconnect makes a new MediaSession.

// Video goes out in several encodings (simulcast, told apart by rid), so the SFU can give each
// student the one that fits their bandwidth and the size they show it at. The camera: 180p,
// 360p and 720p (from the 1280x720 the camera is asked for). A screen share: full resolution
// at a low frame rate (text stays sharp), and half resolution for phones.
/** The owner of a `voice_track`: a moderator speaking to every breakout room. */
export const VOICE = "voice";

const SIMULCAST = {
  camera: [
    { rid: "q", scaleResolutionDownBy: 4, maxBitrate: 150_000 },
    { rid: "h", scaleResolutionDownBy: 2, maxBitrate: 500_000 },
    { rid: "f", scaleResolutionDownBy: 1, maxBitrate: 1_500_000 },
  ],
  screen: [
    { rid: "h", scaleResolutionDownBy: 2, maxBitrate: 400_000, maxFramerate: 5 },
    { rid: "f", scaleResolutionDownBy: 1, maxBitrate: 1_500_000, maxFramerate: 5 },
  ],
};

// The codec video goes out in. VP8 where the browser encodes it (every browser decodes it, and
// the SFU's simulcast and first-frame cache were tuned on it); otherwise H.264 in the profile
// every browser decodes, constrained baseline (42e01f), with packetization mode 1 (the one the
// SFU's keyframe detection reads: single NAL units, STAP-A, FU-A), simulcast alike. `null`:
// the browser's own order, which puts VP8 first.
export function videoCodecPreferences(
  send = globalThis.RTCRtpSender?.getCapabilities?.("video")?.codecs ?? [],
) {
  const is = (codec, mime) => codec.mimeType.toLowerCase() === mime;
  if (send.some((c) => is(c, "video/vp8"))) return null;
  const fmtp = (codec) => (codec.sdpFmtpLine ?? "").toLowerCase();
  const h264 = send.filter((c) => is(c, "video/h264") && /packetization-mode=1/.test(fmtp(c)));
  const baseline = h264.filter((c) => /profile-level-id=42e01f/.test(fmtp(c)));
  const chosen = baseline.length ? baseline : h264;
  if (!chosen.length) return null;
  // Retransmission stays on: the SFU asks for lost packets on the teacher's uplink.
  return [...chosen, ...send.filter((c) => is(c, "video/rtx"))];
}

export class MediaSession extends EventTarget {
  /** `iceServers`: the TURN relays from the join response (empty without a relay). */
  constructor(signaling, iceServers = []) {
    super();
    this.signaling = signaling;
    this.pc = new RTCPeerConnection({ bundlePolicy: "max-bundle", iceServers });
    this.tracksByMid = new Map(); // mid -> MediaStreamTrack
    this.ownerByMid = new Map(); // mid -> {participant, kind, source}
    this.sourceOf = new Map(); // our sending RTCRtpTransceiver -> source
    this.localStream = null;
    this.negotiating = Promise.resolve();
    this.pc.ontrack = (event) => {
      const mid = event.transceiver.mid;
      this.tracksByMid.set(mid, event.track);
      this.#announce(mid);
    };
    this.pc.onconnectionstatechange = () => {
      this.dispatchEvent(new CustomEvent("state", { detail: this.pc.connectionState }));
    };
    signaling.addEventListener("offer", (event) => this.#onServerOffer(event.detail.sdp));
    signaling.addEventListener("track", (event) => {
      const { mid, participant, kind, source } = event.detail;
      this.ownerByMid.set(mid, { participant, kind, source: source ?? (kind === "audio" ? "microphone" : "camera") });
      this.#announce(mid);
    });
    // A moderator speaking to every breakout room: audio from outside this room.
    signaling.addEventListener("voice_track", (event) => {
      const { mid } = event.detail;
      this.ownerByMid.set(mid, { participant: VOICE, kind: "audio", source: "microphone" });
      this.#announce(mid);
    });
    signaling.addEventListener("track_ended", (event) => {
      const { mid } = event.detail;
      const owner = this.ownerByMid.get(mid);
      this.ownerByMid.delete(mid);
      if (owner) this.dispatchEvent(new CustomEvent("trackended", { detail: { mid, track: this.tracksByMid.get(mid), ...owner } }));
    });
  }

  /** Starts: our tracks if any (a reconnect), one audio and one video slot to receive. */
  async start(stream, screenTrack) {
    if (stream) this.#addLocal(stream);
    if (screenTrack) this.#addSending(screenTrack, "screen");
    this.pc.addTransceiver("audio", { direction: "recvonly" });
    this.pc.addTransceiver("video", { direction: "recvonly" });
    await this.#offer();
  }

  /** Publishes a camera/microphone stream (on stage). */
  async publish(stream) {
    this.#addLocal(stream);
    await this.#offer();
  }

  /**
   * Sends `track` instead of the camera or microphone we send now (another device chosen while
   * live). The m-line stays, so nothing is renegotiated and subscribers keep their slot; the
   * old track is stopped (it releases the device).
   */
  async replaceLocal(track) {
    const source = track.kind === "audio" ? "microphone" : "camera";
    for (const [transceiver, s] of this.sourceOf) {
      if (s !== source) continue;
      const old = transceiver.sender.track;
      await transceiver.sender.replaceTrack(track);
      if (old && old !== track) old.stop();
    }
  }

  /** Sends a screen-share track with source `screen`. */
  async shareScreen(track) {
    this.#addSending(track, "screen");
    await this.#offer();
  }

  /** Stops sending the screen share. */
  async stopScreen() {
    await this.#stopSending((source) => source === "screen");
  }

  /** Stops publishing everything (taken off stage). The server stops forwarding at once anyway. */
  async unpublish() {
    this.localStream = null;
    await this.#stopSending(() => true);
  }

  /** The mid on which `track` (received) arrives, if any. */
  midOf(track) {
    for (const [mid, t] of this.tracksByMid) if (t === track) return mid;
    return null;
  }

  close() {
    this.pc.close();
  }

  #addLocal(stream) {
    this.localStream = stream;
    for (const track of stream.getTracks()) {
      this.#addSending(track, track.kind === "audio" ? "microphone" : "camera");
    }
  }

  #addSending(track, source) {
    const sendEncodings = SIMULCAST[source];
    if (source === "screen") track.contentHint = "text"; // sharp text over smooth motion
    const transceiver = this.pc.addTransceiver(track, { direction: "sendonly", ...(sendEncodings ? { sendEncodings } : {}) });
    const codecs = track.kind === "video" ? videoCodecPreferences() : null;
    if (codecs) transceiver.setCodecPreferences(codecs);
    this.sourceOf.set(transceiver, source);
  }

  async #stopSending(which) {
    for (const [transceiver, source] of this.sourceOf) {
      if (!which(source)) continue;
      transceiver.sender.track?.stop();
      await transceiver.sender.replaceTrack(null);
      transceiver.direction = "inactive";
      this.sourceOf.delete(transceiver);
    }
    await this.#offer();
  }

  #announce(mid) {
    const track = this.tracksByMid.get(mid);
    const owner = this.ownerByMid.get(mid);
    if (track && owner) {
      this.dispatchEvent(new CustomEvent("track", { detail: { mid, track, ...owner } }));
    }
  }

  // Negotiations run one at a time. `sources` tells the server what each sending m-line carries.
  #offer() {
    this.negotiating = this.negotiating.catch(() => {}).then(async () => {
      const offer = await this.pc.createOffer();
      await this.pc.setLocalDescription(offer);
      const sources = {};
      for (const [transceiver, source] of this.sourceOf) {
        if (transceiver.mid !== null) sources[transceiver.mid] = source;
      }
      const reply = await this.signaling.request({ type: "offer", sdp: offer.sdp, sources });
      await this.pc.setRemoteDescription({ type: "answer", sdp: reply.sdp });
    });
    return this.negotiating;
  }

  #onServerOffer(sdp) {
    this.negotiating = this.negotiating.catch(() => {}).then(async () => {
      if (this.pc.signalingState !== "stable") return; // ours wins; the SFU offers again
      await this.pc.setRemoteDescription({ type: "offer", sdp });
      const answer = await this.pc.createAnswer();
      await this.pc.setLocalDescription(answer);
      await this.signaling.request({ type: "answer", sdp: answer.sdp });
    }).catch((error) => console.warn("renegotiation failed", error));
  }
}
