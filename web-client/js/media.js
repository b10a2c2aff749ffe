// The media side of a participant: one RTCPeerConnection to the SFU. We offer our own tracks
// (sendonly) and receive slots (recvonly); the SFU sends `offer` when it needs more m-lines
// and `track` to say whose media arrives on which m-line.

export class MediaSession extends EventTarget {
  constructor(signaling) {
    super();
    this.signaling = signaling;
    this.pc = new RTCPeerConnection({ bundlePolicy: "max-bundle" });
    this.tracksByMid = new Map(); // mid -> MediaStreamTrack
    this.ownerByMid = new Map(); // mid -> {participant, kind}
    this.senders = [];
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
      const { mid, participant, kind } = event.detail;
      this.ownerByMid.set(mid, { participant, kind });
      this.#announce(mid);
    });
    signaling.addEventListener("track_ended", (event) => {
      const { mid } = event.detail;
      const owner = this.ownerByMid.get(mid);
      this.ownerByMid.delete(mid);
      if (owner) this.dispatchEvent(new CustomEvent("trackended", { detail: { mid, ...owner } }));
    });
  }

  /** Starts receiving: one audio and one video slot; the SFU adds more as needed. */
  async start(stream) {
    if (stream) this.#addLocal(stream);
    this.pc.addTransceiver("audio", { direction: "recvonly" });
    this.pc.addTransceiver("video", { direction: "recvonly" });
    await this.#offer();
  }

  /** Publishes a camera/microphone stream (on stage). */
  async publish(stream) {
    this.#addLocal(stream);
    await this.#offer();
  }

  /** Stops publishing (taken off stage). The server stops forwarding at once anyway. */
  async unpublish() {
    for (const transceiver of this.pc.getTransceivers()) {
      if (transceiver.sender.track) {
        transceiver.sender.track.stop();
        await transceiver.sender.replaceTrack(null);
        transceiver.direction = "inactive";
      }
    }
    this.localStream = null;
    await this.#offer();
  }

  close() {
    this.pc.close();
  }

  #addLocal(stream) {
    this.localStream = stream;
    for (const track of stream.getTracks()) {
      this.pc.addTransceiver(track, { direction: "sendonly", streams: [stream] });
    }
  }

  #announce(mid) {
    const track = this.tracksByMid.get(mid);
    const owner = this.ownerByMid.get(mid);
    if (track && owner) {
      this.dispatchEvent(new CustomEvent("track", { detail: { mid, track, ...owner } }));
    }
  }

  // Negotiations run one at a time.
  #offer() {
    this.negotiating = this.negotiating.then(async () => {
      const offer = await this.pc.createOffer();
      await this.pc.setLocalDescription(offer);
      const reply = await this.signaling.request({ type: "offer", sdp: offer.sdp });
      await this.pc.setRemoteDescription({ type: "answer", sdp: reply.sdp });
    });
    return this.negotiating;
  }

  #onServerOffer(sdp) {
    this.negotiating = this.negotiating.then(async () => {
      if (this.pc.signalingState !== "stable") return; // ours wins; the SFU offers again
      await this.pc.setRemoteDescription({ type: "offer", sdp });
      const answer = await this.pc.createAnswer();
      await this.pc.setLocalDescription(answer);
      await this.signaling.request({ type: "answer", sdp: answer.sdp });
    }).catch((error) => console.warn("renegotiation failed", error));
  }
}
