// The video tiles of the live classroom: one per participant and source group (camera with
// microphone, screen, or the teacher's encoder), the large one (the encoder when streaming,
// else a screen share, else the teacher), the others in a grid. Each remote video reports its
// shown size to the server (`video_size`).

const SCREEN = new Set(["screen", "screen_audio"]);
const groupOf = (source) => (SCREEN.has(source) ? "screen" : source === "encoder" ? "encoder" : "camera");

export class Tiles {
  /**
   * `main` and `grid` are the containers; `isTeacher(id)` says whose camera goes large;
   * `onSize(mid, width, height)` is called when a remote video's shown size changes.
   */
  constructor(main, grid, { isTeacher, onSize }) {
    this.main = main;
    this.grid = grid;
    this.isTeacher = isTeacher;
    this.onSize = onSize;
    this.tiles = new Map(); // key -> {figure, video, stream, participant, group, mids: Map(track -> mid)}
    this.sizes = new Map(); // mid -> "w×h" last sent
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
  showLocal(stream, name = "You") {
    const tile = this.#tile("me:camera", null, "camera", name);
    tile.video.muted = true;
    tile.video.srcObject = stream;
    tile.video.play().catch(() => {});
    this.layout();
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
      if (tile.participant === participant) tile.caption.textContent = tile.group === "screen" ? `${name}'s screen` : name;
    }
  }

  /** Marks the tiles of the participants speaking now. */
  speaking(ids) {
    for (const tile of this.tiles.values()) tile.figure.classList.toggle("speaking", tile.participant !== null && ids.has(tile.participant));
  }

  /** Large: the encoder, else the first screen share, else the teacher's camera; the rest in the grid. */
  layout() {
    const tiles = [...this.tiles.values()];
    const large = tiles.find((t) => t.group === "encoder")
      ?? tiles.find((t) => t.group === "screen")
      ?? tiles.find((t) => t.participant !== null && t.group === "camera" && this.isTeacher(t.participant));
    for (const tile of tiles) {
      const parent = tile === large ? this.main : this.grid;
      if (tile.figure.parentElement !== parent) parent.append(tile.figure);
      tile.figure.classList.toggle("large", tile === large);
    }
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
      figure.append(video, caption);
      tile = { figure, video, caption, stream: new MediaStream(), participant, group, mids: new Map() };
      video.tile = tile;
      this.tiles.set(key, tile);
      if (participant !== null) this.observer.observe(video);
    }
    tile.caption.textContent = group === "screen" ? `${name}'s screen` : name;
    tile.video.setAttribute("aria-label", tile.caption.textContent);
    return tile;
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
    if (!tile || tile.participant === null) return;
    const track = tile.stream.getVideoTracks()[0];
    const mid = track ? tile.mids.get(track) : undefined;
    if (mid === undefined || mid === null) return;
    const visible = video.isConnected && video.offsetWidth > 0;
    const width = visible ? Math.round(video.offsetWidth * devicePixelRatio) : 0;
    const height = visible ? Math.round(video.offsetHeight * devicePixelRatio) : 0;
    if (this.sizes.get(mid) === `${width}x${height}`) return;
    this.sizes.set(mid, `${width}x${height}`);
    this.onSize(mid, width, height);
  }
}
