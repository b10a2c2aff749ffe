#!/usr/bin/env bash
# Regenerates the load tester's clips (committed, so neither CI nor the tool needs ffmpeg):
# a 2 s VP8 test pattern at three simulcast sizes (IVF, one keyframe at the start, so the
# looped clip has a keyframe every 2 s) and 2 s of Opus in 20 ms frames (Ogg); for the ingest
# scenario, what OBS would send over RTMP: 2 s of H.264 (constrained baseline, no B-frames,
# one slice per picture, a keyframe every second) and AAC at 48 kHz, as FLV.
# Needs ffmpeg with libvpx, libopus and libx264 (Debian's ffmpeg has them).
set -euo pipefail
cd "$(dirname "$0")"
seconds=2
fps=30
encode() { # name size bitrate
  ffmpeg -hide_banner -loglevel error -y -f lavfi -i "testsrc2=size=$2:rate=$fps" -t "$seconds" \
    -c:v libvpx -deadline realtime -cpu-used 8 -b:v "$3" -maxrate "$3" -bufsize "$3" \
    -g $((fps * seconds)) -keyint_min $((fps * seconds)) -auto-alt-ref 0 -lag-in-frames 0 \
    -error-resilient 1 -pix_fmt yuv420p -f ivf "$1.ivf"
}
encode video-180p 320x180 120k
encode video-360p 640x360 350k
encode video-720p 1280x720 900k
ffmpeg -hide_banner -loglevel error -y -f lavfi -i "sine=frequency=440:sample_rate=48000" \
  -t "$seconds" -c:a libopus -b:a 32k -frame_duration 20 -application voip -ac 1 \
  -f ogg audio.opus.ogg
ffmpeg -hide_banner -loglevel error -y -f lavfi -i "testsrc2=size=640x360:rate=$fps" \
  -f lavfi -i "sine=frequency=440:sample_rate=48000" -t "$seconds" \
  -c:v libx264 -preset veryfast -tune zerolatency -profile:v baseline -threads 1 \
  -g "$fps" -keyint_min "$fps" -bf 0 -b:v 800k -maxrate 800k -bufsize 800k -pix_fmt yuv420p \
  -c:a aac -b:a 96k -ar 48000 -ac 2 -f flv ingest-360p.flv
ls -l ./*.ivf ./*.ogg ./*.flv
