// An employer's durable follower of its own feed (DEADLINES and BENEFITS streams): each message written once to a
// JSON-lines file, then acknowledged. It keeps the last stream sequence written per stream in FILE.state and, on
// each start, asks the feeds service to reopen its durable consumer from the next one (`start_sequence`, `reset:
// true`): after a crash nothing is lost, and nothing waits out the 30 s acknowledgement window.
//
//   node follow.js PROFILE.json OUT.jsonl [NATS_URL] [--until-caught-up]
//
// Deduplicate on the `Nats-Msg-Id` header; a case's messages come in the order of its recorded reports.
"use strict";
const fs = require("fs");
const { connectAs } = require("./common");

const STREAMS = ["DEADLINES", "BENEFITS"];

async function main() {
  const args = process.argv.slice(2);
  const untilCaughtUp = args.includes("--until-caught-up");
  const [profilePath, out, url] = args.filter((a) => !a.startsWith("--"));
  const { nc, profile } = await connectAs(profilePath, url);
  const enterprise = profile.party.split(":")[1];
  const stateFile = `${out}.state`;
  const state = fs.existsSync(stateFile) ? JSON.parse(fs.readFileSync(stateFile, "utf8")) : {};
  // what the output already holds counts too (a line written just before a crash is not written again)
  if (fs.existsSync(out)) {
    for (const line of fs.readFileSync(out, "utf8").split("\n")) {
      try {
        const r = JSON.parse(line);
        state[r.stream] = Math.max(state[r.stream] || 0, r.sequence);
      } catch (_) { /* a line cut short by a crash */ }
    }
  }
  const consumers = {};
  for (const stream of STREAMS) {
    const body = { stream, consumer: "live", reset: true };
    if (state[stream]) body.start_sequence = state[stream] + 1;
    const reply = JSON.parse(new TextDecoder().decode(
      (await nc.request(`reintegration.feed.${enterprise}`, JSON.stringify(body), { timeout: 5000 })).data));
    if (reply.error) throw new Error(`feeds service: ${reply.error}`);
    // behind the account's API prefix the API check would fail: checkAPI false; and only consumers.get works here
    const js = nc.jetstream({ apiPrefix: reply.api_prefix, checkAPI: false });
    consumers[stream] = await js.consumers.get(stream, reply.consumer);
  }
  const sink = fs.openSync(out, "a");
  let handled = 0;
  for (;;) {
    let got = 0;
    for (const stream of STREAMS) {
      const batch = await consumers[stream].fetch({ max_messages: 100, expires: 1000 });
      for await (const m of batch) {
        if (m.seq <= (state[stream] || 0)) { m.ack(); continue; }
        const headers = {};
        if (m.headers) for (const [k] of m.headers) headers[k] = m.headers.get(k);
        const record = { stream, sequence: m.seq, subject: m.subject, headers, message: m.json() };
        fs.writeSync(sink, JSON.stringify(record) + "\n");
        fs.fsyncSync(sink);
        state[stream] = m.seq;
        fs.writeFileSync(`${stateFile}.tmp`, JSON.stringify(state));
        fs.renameSync(`${stateFile}.tmp`, stateFile);
        await m.ackAck();
        handled++;
        got++;
      }
    }
    if (untilCaughtUp && got === 0) break;
  }
  fs.closeSync(sink);
  console.error(`${handled} message(s) handled; positions: ${JSON.stringify(state)}`);
  await nc.close();
}

main().catch((err) => { console.error(err.message); process.exit(2); });
