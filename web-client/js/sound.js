// Sounds the live page makes itself (no audio files: tones made with Web Audio), played on the
// chosen speaker, and the microphone level meter of the device check.

let context = null;
const audio = () => (context ??= new AudioContext());

/**
 * Plays `notes` ([frequency Hz, seconds]...) one after another on the speaker `sinkId` ("" the
 * default). Through an <audio> element, since that is what can be sent to a chosen speaker
 * everywhere `setSinkId` exists. Resolves when done.
 */
export async function playTones(notes, sinkId = "", volume = 0.2) {
  const ctx = audio();
  if (ctx.state === "suspended") await ctx.resume().catch(() => {});
  const out = ctx.createMediaStreamDestination();
  const element = new Audio();
  element.srcObject = out.stream;
  if (sinkId && element.setSinkId) await element.setSinkId(sinkId).catch(() => {});
  await element.play().catch(() => {});
  let at = ctx.currentTime + 0.05;
  for (const [frequency, seconds] of notes) {
    const oscillator = ctx.createOscillator();
    const gain = ctx.createGain();
    oscillator.frequency.value = frequency;
    gain.gain.setValueAtTime(0, at);
    gain.gain.linearRampToValueAtTime(volume, at + 0.02);
    gain.gain.linearRampToValueAtTime(0, at + seconds);
    oscillator.connect(gain).connect(out);
    oscillator.start(at);
    oscillator.stop(at + seconds);
    at += seconds;
  }
  const total = (at - ctx.currentTime) * 1000;
  await new Promise((resolve) => setTimeout(resolve, total + 50));
  element.pause();
  element.srcObject = null;
}

/** The device check's test sound: three rising notes. */
export const testSound = (sinkId) => playTones([[523, 0.25], [659, 0.25], [784, 0.4]], sinkId);

/** A raised hand: two quick high notes. */
export const handChime = (sinkId) => playTones([[880, 0.12], [1175, 0.2]], sinkId, 0.15);

/**
 * Shows the level of `stream`'s microphone in `fill` (its width in %, and `aria-valuenow` on
 * its parent meter) until the returned function is called.
 */
export function levelMeter(stream, fill) {
  const track = stream?.getAudioTracks()[0];
  if (!track) return () => {};
  const ctx = audio();
  const source = ctx.createMediaStreamSource(new MediaStream([track]));
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 512;
  source.connect(analyser);
  const samples = new Float32Array(analyser.fftSize);
  let frame = 0;
  let last = -1;
  const draw = () => {
    analyser.getFloatTimeDomainData(samples);
    let sum = 0;
    for (const s of samples) sum += s * s;
    // RMS to a 0..100 scale on which speech lands mid-way (about -50 to 0 dBFS).
    const db = 10 * Math.log10(sum / samples.length + 1e-10);
    const level = Math.max(0, Math.min(100, Math.round((db + 50) * 2)));
    if (level !== last) {
      fill.style.width = `${level}%`;
      fill.parentElement.setAttribute("aria-valuenow", String(level));
      last = level;
    }
    frame = requestAnimationFrame(draw);
  };
  if (ctx.state === "suspended") ctx.resume().catch(() => {});
  draw();
  return () => {
    cancelAnimationFrame(frame);
    source.disconnect();
    fill.style.width = "0";
    fill.parentElement.setAttribute("aria-valuenow", "0");
  };
}
