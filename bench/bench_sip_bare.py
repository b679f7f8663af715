"""The box's SIP line against a bare pjsua2 answering app: highest zero-failure call rate of each.

The same sipp scenario (bench/sipp_bench_uac.xml: INVITE, RTP echoed back, the far end
plays its audio and hangs up) runs at rising rates against:

- bare: a pjsua2 app of ~60 lines (below, run as a child with ``--answer``) that answers,
  plays the same WAV the box plays into the call through pjsua2's own bridge, and hangs
  up at its end; no journal, no recording, no IVR;
- box: `hotline engine` with one SIP line whose flow plays that prompt and hangs up, each
  call journaled, recorded in stereo and compressed as in service.

Per rate: calls placed, failed, most at once; then each side's highest rate with no
failed call and their ratio box / bare (goal >= 0.8). The pjsua2 build limits both: the
x86_64 wheel takes 4 calls at once (PJSUA_MAX_CALLS), so the rate at which calls overlap
more than that fails on both sides alike; systemd/build-pjsua2.sh builds one that takes 32.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time
import wave

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from appliance.prompts import prompt_path  # noqa: E402
from bench.bench_sip import Engine, free_udp_port, run_sipp  # noqa: E402

HERE = os.path.abspath(__file__)
RATES = (5, 10, 14, 16, 18, 20, 22, 25, 30, 40, 60, 80)  # calls per 10 s
STEP_SECONDS = 12


def answer_forever(port, wav_path):
    """The bare app: answer every INVITE on ``port``, play ``wav_path`` into it, hang up at its end."""
    import pjsua2 as pj
    with wave.open(wav_path) as wav:
        seconds = wav.getnframes() / wav.getframerate()
    ep = pj.Endpoint()
    ep.libCreate()
    config = pj.EpConfig()
    config.uaConfig.threadCnt = 0
    config.uaConfig.maxCalls = 32
    config.logConfig.level = config.logConfig.consoleLevel = 1
    config.medConfig.clockRate = config.medConfig.sndClockRate = 8000
    config.medConfig.noVad = True
    ep.libInit(config)
    transport = pj.TransportConfig()
    transport.port = port
    transport.boundAddress = "127.0.0.1"
    ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, transport)
    ep.audDevManager().setNullDev()
    ep.libStart()
    calls, due, ended = {}, {}, []

    class Call(pj.Call):
        def onCallState(self, prm):
            if self.getInfo().state == pj.PJSIP_INV_STATE_DISCONNECTED:
                ended.append(self)

        def onCallMediaState(self, prm):
            info = self.getInfo()
            for index, media in enumerate(info.media):
                if media.type == pj.PJMEDIA_TYPE_AUDIO and media.status == pj.PJSUA_CALL_MEDIA_ACTIVE \
                        and self not in due:
                    player = pj.AudioMediaPlayer()
                    player.createPlayer(wav_path, pj.PJMEDIA_FILE_NO_LOOP)
                    player.startTransmit(self.getAudioMedia(index))
                    calls[self] = player
                    due[self] = time.monotonic() + seconds

    class Account(pj.Account):
        def onIncomingCall(self, prm):
            call = Call(self, prm.callId)
            calls[call] = None
            reply = pj.CallOpParam()
            reply.statusCode = 200
            call.answer(reply)

    account_config = pj.AccountConfig()
    account_config.idUri = f"sip:bare@127.0.0.1:{port}"
    account = Account()
    account.create(account_config, True)
    print("ready", flush=True)
    while True:
        ep.libHandleEvents(10)
        now = time.monotonic()
        for call in [call for call, at in due.items() if at <= now]:
            del due[call]
            try:
                call.hangup(pj.CallOpParam())
            except pj.Error:
                pass  # the caller hung up first: its DISCONNECTED is on the way
        while ended:
            call = ended.pop()
            due.pop(call, None)
            calls.pop(call, None)  # the player and the call go here, on this thread


class Bare:
    """The bare answering app as a child process on a UDP port of its own."""

    def __init__(self, wav_path):
        self.port = free_udp_port()
        self.process = subprocess.Popen([sys.executable, HERE, "--answer", str(self.port), wav_path],
                                        stdout=subprocess.PIPE, text=True)
        for line in self.process.stdout:  # pjlib's first lines come before its log level is set
            if line.strip() == "ready":
                return
        self.stop()
        raise SystemExit("the bare pjsua2 app did not start")

    def stop(self):
        self.process.kill()
        self.process.wait()


def climb(port, label, workdir):
    """Rising rates against ``port`` until a call fails; the highest rate (calls/s) with none."""
    best = None
    for rate in RATES:
        calls = max(6, rate * STEP_SECONDS // 10)
        counts = run_sipp(port, rate, calls, 64, workdir, period_ms=10000)
        print(f"   {label:<5} {rate / 10:>7.1f} {counts['placed']:>7} {counts['failed']:>7} "
              f"{counts['most_at_once']:>8} {counts['answer_seconds'] * 1000:>9.0f}",
              flush=True)
        time.sleep(3)  # the last BYEs, the box's journal and recordings
        if counts["failed"]:
            break
        best = rate / 10
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answer", nargs=2, metavar=("PORT", "WAV"), help="run the bare app (a child)")
    args = parser.parse_args()
    if args.answer:
        return answer_forever(int(args.answer[0]), args.answer[1])
    try:
        import pjsua2  # noqa: F401
    except ImportError:
        print("pjsua2 is not installed: no SIP comparison")
        return 0
    engine = Engine("short")
    try:
        line = engine.control.request("status")["lines"][0]
        limit = line.get("stack_max_calls")
        with tempfile.TemporaryDirectory() as workdir:
            wav_path = os.path.join(workdir, "hello.wav")
            with open(prompt_path(engine.data_dir, "en", "hello"), "rb") as source, open(wav_path, "wb") as copy:
                copy.write(source.read())  # the very prompt the box plays
            with wave.open(wav_path) as wav:
                seconds = wav.getnframes() / wav.getframerate()
            print(f"sipp against a bare pjsua2 app and the box's SIP line: answer, {seconds:.1f} s of audio, hang up")
            print(f"   {'side':<5} {'calls/s':>7} {'placed':>7} {'failed':>7} {'at once':>8} {'answer ms':>9}")
            box = climb(engine.port, "box", workdir)
            bare_app = Bare(wav_path)
            try:
                bare = climb(bare_app.port, "bare", workdir)
            finally:
                bare_app.stop()
    finally:
        engine.stop()
    print(f"   highest rate with no failed call: box {box} calls/s, bare pjsua2 {bare} calls/s; "
          f"ratio box / bare {box / bare:.2f} (goal >= 0.8)" if box and bare else
          f"   highest rate with no failed call: box {box}, bare pjsua2 {bare}: no ratio")
    print(f"   this pjsua2 build takes {limit if limit else 'an unknown number of'} calls at once "
          "(the x86_64 wheel: 4, PJSUA_MAX_CALLS; systemd/build-pjsua2.sh: 32); both sides fail where calls "
          "overlap more than that; the box's calls last longer by its answer time and its 0.2 s goodbye pause "
          "(its last word reaches the caller), the bare app hangs up as its player ends")
    return 0


if __name__ == "__main__":
    sys.exit(main())
