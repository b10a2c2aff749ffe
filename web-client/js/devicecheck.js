// The device check before going on stage: the camera preview, the microphone's level, the
// speaker to play the lesson on and a test sound. What it opened is handed over to be
// published (`take`), or released when the check closes without it.

import { deviceProblem, fillPickers, fillSpeakers, openCamera } from "./devices.js";
import { levelMeter, testSound } from "./sound.js";
import { $ } from "./page.js";

const SPEAKER_KEY = "classroom.speaker";

export class DeviceCheck {
  /** `onProblem(text)`: a device could not be opened; `onReady()`: the preview works. */
  constructor({ onProblem, onReady }) {
    this.onProblem = onProblem;
    this.onReady = onReady;
    this.onSpeaker = () => {};
    this.stream = null;
    this.starting = null;
    this.stopMeter = () => {};
    this.sinkId = localStorage.getItem(SPEAKER_KEY) ?? "";
  }

  wire() {
    for (const pick of ["camera-pick", "microphone-pick"]) {
      $(pick).addEventListener("change", () => this.start().catch(() => {}));
    }
    $("speaker-pick").addEventListener("change", (event) => this.chooseSpeaker(event.target.value));
    $("test-sound").addEventListener("click", async () => {
      $("test-sound").disabled = true;
      await testSound(this.sinkId).catch(() => {});
      $("test-sound").disabled = false;
    });
    this.#speakers();
    navigator.mediaDevices?.addEventListener?.("devicechange", () => this.#speakers());
  }

  /** Shows the check (opening the camera the first time) or hides it, releasing the devices. */
  show(show) {
    const wasHidden = $("setup").hidden;
    $("setup").hidden = !show;
    if (show && wasHidden && !this.stream) this.start().catch(() => {});
    if (!show && !wasHidden) this.stop();
  }

  /** Opens the chosen camera and microphone into the preview; reports denied or missing. */
  start() {
    this.starting ??= (async () => {
      try {
        const picked = { cameraId: $("camera-pick").value, microphoneId: $("microphone-pick").value };
        const stream = await openCamera(picked);
        this.#release();
        this.stream = stream;
        $("preview").srcObject = stream;
        this.stopMeter = levelMeter(stream, $("level"));
        await fillPickers($("camera-pick"), $("microphone-pick"), stream);
        this.#speakers();
        this.onReady();
        return stream;
      } catch (error) {
        this.onProblem(deviceProblem(error));
        throw error;
      } finally {
        this.starting = null;
      }
    })();
    return this.starting;
  }

  /** The previewed stream, to publish: the check lets go of it (null if none could open). */
  async take() {
    const stream = this.stream ?? await this.start().catch(() => null);
    if (!stream) return null;
    this.stopMeter();
    this.stopMeter = () => {};
    this.stream = null;
    $("preview").srcObject = null;
    return stream;
  }

  /** Closes the preview and releases the devices. */
  stop() {
    this.#release();
    $("preview").srcObject = null;
  }

  /** The speaker everything plays on, from either picker (the check's or the live one). */
  chooseSpeaker(sinkId) {
    this.sinkId = sinkId;
    localStorage.setItem(SPEAKER_KEY, sinkId);
    for (const id of ["speaker-pick", "live-speaker-pick"]) $(id).value = sinkId;
    this.onSpeaker(sinkId);
  }

  #release() {
    this.stopMeter();
    this.stopMeter = () => {};
    this.stream?.getTracks().forEach((t) => t.stop());
    this.stream = null;
  }

  async #speakers() {
    try {
      await fillSpeakers($("speaker-pick"), this.sinkId);
      await fillSpeakers($("live-speaker-pick"), this.sinkId);
      if ($("speaker-pick").value !== this.sinkId) this.sinkId = $("speaker-pick").value;
      this.onSpeaker(this.sinkId);
    } catch {
      // No list of outputs: the default speaker it is.
    }
  }
}
