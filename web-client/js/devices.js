// Camera and microphone: the device picker, the preview stream, and the messages a person
// can act on when the browser refuses (denied) or finds nothing (missing).

import { t } from "./i18n.js";

const DEVICES = {
  both: () => t("devices.cameraAndMicrophone"),
  camera: () => t("devices.camera"),
  microphone: () => t("devices.microphone"),
  screen: () => t("devices.screenShare"),
};

/** A message for a getUserMedia / getDisplayMedia failure; `device`: both, camera,
 * microphone or screen. */
export function deviceProblem(error, device = "both") {
  const what = DEVICES[device]();
  switch (error?.name) {
    case "NotAllowedError":
    case "SecurityError":
      return t("devices.denied", { what });
    case "NotFoundError":
    case "OverconstrainedError":
      return t("devices.notFound", { what });
    case "NotReadableError":
      return t("devices.inUse", { what });
    default:
      return t("devices.failed", { what, error: error?.message ?? String(error) });
  }
}

/** Opens camera and microphone (the chosen ones when given). */
export async function openCamera({ cameraId, microphoneId } = {}) {
  return navigator.mediaDevices.getUserMedia({
    audio: microphoneId ? { deviceId: { exact: microphoneId } } : true,
    video: {
      ...(cameraId ? { deviceId: { exact: cameraId } } : {}),
      width: { ideal: 1280 },
      height: { ideal: 720 },
    },
  });
}

/** Opens one device of `kind` ("videoinput" or "audioinput") by id; resolves with its track. */
export async function openDevice(kind, deviceId) {
  const exact = { deviceId: { exact: deviceId } };
  const stream = await navigator.mediaDevices.getUserMedia(kind === "audioinput"
    ? { audio: exact }
    : { video: { ...exact, width: { ideal: 1280 }, height: { ideal: 720 } } });
  return stream.getTracks()[0];
}

/** Fills the camera and microphone pickers; keeps the device `stream` uses selected. */
export async function fillPickers(cameraSelect, microphoneSelect, stream) {
  const devices = await navigator.mediaDevices.enumerateDevices();
  const using = new Set(stream?.getTracks().map((t) => t.getSettings().deviceId) ?? []);
  const fill = (select, kind, noun) => {
    const found = devices.filter((d) => d.kind === kind);
    select.replaceChildren(...found.map((d, i) => {
      const option = document.createElement("option");
      option.value = d.deviceId;
      option.textContent = d.label || noun(i + 1);
      option.selected = using.has(d.deviceId);
      return option;
    }));
    select.disabled = found.length === 0;
  };
  fill(cameraSelect, "videoinput", (n) => t("devices.cameraNumber", { n }));
  fill(microphoneSelect, "audioinput", (n) => t("devices.microphoneNumber", { n }));
}

/** Asks for a screen (or window) to share; resolves with its video track. */
export async function openScreen() {
  const stream = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { ideal: 15 } }, audio: false });
  return stream.getVideoTracks()[0];
}

/** Fills a speaker (audio output) picker; the browser's default first. Browsers that cannot
 * choose (no `setSinkId`) get the picker disabled with only the default. */
export async function fillSpeakers(select, chosen = "") {
  const devices = navigator.mediaDevices?.enumerateDevices ? await navigator.mediaDevices.enumerateDevices() : [];
  const outputs = devices.filter((d) => d.kind === "audiooutput" && d.deviceId && d.deviceId !== "default");
  const options = [{ deviceId: "", label: t("devices.defaultSpeaker") }, ...outputs];
  select.replaceChildren(...options.map((d, i) => {
    const option = document.createElement("option");
    option.value = d.deviceId;
    option.textContent = d.label || t("devices.speakerNumber", { n: i });
    option.selected = d.deviceId === chosen;
    return option;
  }));
  select.disabled = options.length < 2 || !("setSinkId" in HTMLMediaElement.prototype);
}
