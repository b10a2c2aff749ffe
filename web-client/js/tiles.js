// The video tiles of the live classroom: one per participant and source group (camera with
// microphone, screen, or the teacher's encoder). In speaker view one tile is large on the
// stage: the pinned one, else the encoder while it streams, else a screen share, else the
// person speaking (held a moment, so the stage does not flicker between two voices), else the
// teacher; the others run in a strip. In gallery view all share a grid sized to fit them.
// Each remote video reports its shown size to the server (`video_size`).

import { t } from "./i18n.js";

const SCREEN = new Set(["screen", "screen_audio"]);
const groupOf = (source) => (SCREEN.has(source) ? "screen" : source === "encoder" ? "encoder" : "camera");
// How long a speaker keeps the stage before another voice may take it.
const SPEAKER_HOLD_MS = 2000;

export class Tiles {
  /**
   * `main` and `grid` are the containers; `isTeacher(id)` says whose camera goes large when
   * nobody speaks; `onSize(mid, width, height)` is called when a remote video's shown size
   * changes; `onChange()` after the layout changed (who is large, which tiles exist).
   */
  constructor(main, grid, { isTeacher, onSize, onChange = () => {} }) {
    this.main = main;
    this.grid = grid;
    this.isTeacher = isTeacher;
    this.onSize = onSize;
    this.onChange = onChange;
    this.tiles = new Map(); // key -> {figure, video, caption, stream, participant, group, mids: Map(track -> mid)}
    this.sizes = new Map(); // mid -> "w×h" last sent
    this.view = "speaker"; // or "gallery"
    this.pinned = null; // a tile key
    this.speaker = null; // {participant, since}
    this.sinkId = "";
    this.me = null; // our own participant id, for the local tile
    this.observer = new ResizeObserver((entries) => {
      for (const entry of entries) this.#reportSize(entry.target);
    });
  }

  /** Shows a received track in its participant's tile. */
  add({ participant, track, source, mid }, name) {
    const group = groupOf(source);
    const tile = this.#tile(`${participant}:${group}`, participant, group, name);
    for (const old of tile.stream.getTracks().filter((t) => t.kind === track.kind)) {
      tile.stream.removeTrack(old);
      tile.mids.delete(old);
    }
    tile.stream.addTrack(track);
    tile.mids.set(track, mid);
    tile.video.srcObject = tile.stream;
    tile.video.play().catch(() => {});
    this.layout();
    this.#reportSize(tile.video);
  }

  /** Removes a track that ended; a tile left with no tracks goes. */
  remove({ participant, source, track }) {
    const group = groupOf(source);
    const key = `${participant}:${group}`;
    const tile = this.tiles.get(key);
    if (!tile) return;
    if (track) {
      tile.stream.removeTrack(track);
      tile.mids.delete(track);
    }
    if (!track || tile.stream.getTracks().length === 0) this.#drop(key);
    this.layout();
  }

  /** Our own camera (muted, never sized by the server). */
  showLocal(stream, name = t("live.you")) {
    const tile = this.#tile("me:camera", this.me, "camera", name);
    tile.local = true;
    tile.video.muted = true;
    tile.video.srcObject = stream;
    tile.video.play().catch(() => {});
    this.layout();
  }

  /** Our own camera turned off (or on again): a placeholder instead of a black picture. */
  cameraOff(off) {
    this.tiles.get("me:camera")?.figure.classList.toggle("camera-off", off);
  }

  removeLocal() {
    this.#drop("me:camera");
    this.layout();
  }

  /** Drops every remote tile (a reconnect starts a new media session). */
  clearRemote() {
    for (const key of [...this.tiles.keys()]) if (!key.startsWith("me:")) this.#drop(key);
    this.sizes.clear();
    this.layout();
  }

  dropParticipant(participant) {
    for (const group of ["camera", "screen", "encoder"]) this.#drop(`${participant}:${group}`);
    this.layout();
  }

  rename(participant, name) {
    for (const tile of this.tiles.values()) {
      if (tile.participant === participant && !tile.local) this.#caption(tile, name);
    }
  }

  /** Whether `participant` sends us audio (a microphone someone could mute). */
  hasAudio(participant) {
    const tile = this.tiles.get(`${participant}:camera`);
    return !!tile && tile.stream.getAudioTracks().length > 0;
  }

  /** Whether anything is on stage for us to watch (any remote video or our own camera). */
  get empty() {
    return this.tiles.size === 0;
  }

  /** Marks the tiles of the participants speaking now; the loudest may take the stage. */
  speaking(ids, now = performance.now()) {
    for (const tile of this.tiles.values()) tile.figure.classList.toggle("speaking", tile.participant !== null && ids.has(tile.participant));
    const loudest = [...ids].find((id) => this.tiles.has(`${id}:camera`));
    if (loudest !== undefined && loudest !== this.speaker?.participant
      && (!this.speaker || now - this.speaker.since > SPEAKER_HOLD_MS)) {
      this.speaker = { participant: loudest, since: now };
      this.layout();
    }
  }

  /** Shows one connection-quality mark per participant's tiles. */
  quality(of) {
    for (const tile of this.tiles.values()) {
      const mark = tile.participant !== null ? of(tile.participant) : null;
      tile.quality.replaceChildren(...(mark ? [mark] : []));
    }
  }

  setView(view) {
    this.view = view;
    this.layout();
  }

  /** Pins a tile to the stage (again: unpins). A pin in gallery view goes back to speaker view. */
  togglePin(key) {
    this.pinned = this.pinned === key ? null : key;
    if (this.pinned) this.view = "speaker";
    this.layout();
  }

  /** Plays every remote tile on the chosen speaker (audio output device). */
  setSink(sinkId) {
    this.sinkId = sinkId;
    for (const tile of this.tiles.values()) this.#applySink(tile);
  }

  /** The tile on the stage in speaker view. */
  #large(tiles) {
    const camera = (participant) => tiles.find((t) => t.participant === participant && t.group === "camera");
    return (this.pinned && this.tiles.get(this.pinned))
      ?? tiles.find((t) => t.group === "encoder")
      ?? tiles.find((t) => t.group === "screen")
      ?? (this.speaker && camera(this.speaker.participant))
      ?? tiles.find((t) => t.participant !== null && t.group === "camera" && this.isTeacher(t.participant))
      ?? (tiles.length === 1 ? tiles[0] : undefined);
  }

  layout() {
    const tiles = [...this.tiles.values()];
    if (this.pinned && !this.tiles.has(this.pinned)) this.pinned = null;
    const large = this.view === "speaker" ? this.#large(tiles) : undefined;
    for (const tile of tiles) {
      const parent = tile === large ? this.main : this.grid;
      if (tile.figure.parentElement !== parent) parent.append(tile.figure);
      tile.figure.classList.toggle("large", tile === large);
      const pinned = this.pinned === tile.key;
      tile.pin.setAttribute("aria-pressed", String(pinned));
      tile.pin.textContent = pinned ? t("tiles.unpin") : t("tiles.pin");
      tile.pin.setAttribute("aria-label", pinned ? t("tiles.unpinLabel", { name: tile.caption.textContent }) : t("tiles.pinLabel", { name: tile.caption.textContent }));
    }
    const count = this.grid.children.length;
    this.grid.style.setProperty("--cols", String(Math.max(1, Math.ceil(Math.sqrt(count * 1.3)))));
    this.onChange();
  }

  #tile(key, participant, group, name) {
    let tile = this.tiles.get(key);
    if (!tile) {
      const figure = document.createElement("figure");
      figure.className = "tile";
      figure.dataset.tile = key;
      const video = document.createElement("video");
      video.autoplay = true;
      video.playsInline = true;
      const caption = document.createElement("figcaption");
      const pin = document.createElement("button");
      pin.type = "button";
      pin.className = "pin";
      pin.addEventListener("click", () => this.togglePin(key));
      const quality = document.createElement("span");
      quality.className = "tile-quality";
      figure.append(video, caption, pin, quality);
      tile = { key, figure, video, caption, pin, quality, stream: new MediaStream(), participant, group, mids: new Map() };
      video.tile = tile;
      this.tiles.set(key, tile);
      if (!key.startsWith("me:")) {
        this.observer.observe(video);
        video.addEventListener("resize", () => this.#reportSize(video)); // another picture size
        this.#applySink(tile);
      }
    }
    this.#caption(tile, name);
    return tile;
  }

  #caption(tile, name) {
    tile.caption.textContent = tile.group === "screen" ? t("tiles.screenOf", { name }) : name;
    tile.video.setAttribute("aria-label", tile.caption.textContent);
    const shown = tile.caption.textContent;
    tile.pin.setAttribute("aria-label", this.pinned === tile.key ? t("tiles.unpinLabel", { name: shown }) : t("tiles.pinLabel", { name: shown }));
  }

  #applySink(tile) {
    if (this.sinkId && tile.video.setSinkId) tile.video.setSinkId(this.sinkId).catch(() => {});
  }

  #drop(key) {
    const tile = this.tiles.get(key);
    if (!tile) return;
    this.observer.unobserve(tile.video);
    tile.figure.remove();
    this.tiles.delete(key);
  }

  #reportSize(video) {
    const tile = video.tile;
    if (!tile || tile.local || tile.participant === null) return;
    const track = tile.stream.getVideoTracks()[0];
    const mid = track ? tile.mids.get(track) : undefined;
    if (mid === undefined || mid === null) return;
    // The picture as shown: the element's box less the bars of `object-fit: contain` (a tall
    // phone stage shows a 16:9 camera no bigger than a 16:9 tile of its width would).
    const visible = video.isConnected && video.offsetWidth > 0 && video.offsetHeight > 0;
    const aspect = video.videoWidth > 0 && video.videoHeight > 0 ? video.videoWidth / video.videoHeight : 16 / 9;
    const [boxWidth, boxHeight] = [video.offsetWidth, video.offsetHeight];
    const [shownWidth, shownHeight] = boxWidth / boxHeight > aspect ? [boxHeight * aspect, boxHeight] : [boxWidth, boxWidth / aspect];
    const width = visible ? Math.round(shownWidth * devicePixelRatio) : 0;
    const height = visible ? Math.round(shownHeight * devicePixelRatio) : 0;
    if (this.sizes.get(mid) === `${width}x${height}`) return;
    this.sizes.set(mid, `${width}x${height}`);
    this.onSize(mid, width, height);
  }
}
