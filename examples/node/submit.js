// A health fund's, occupational health service's or employer's sender: every report of a JSON-lines file, in
// order, with the parties' retry rule. On a timeout, on no responder, or on a rejection with `retry: true`, send the
// SAME bytes again after a growing delay (the same report id: intake answers a resend with the original acceptance).
// Never make up a new report id.
//
//   node submit.js PROFILE.json REPORTS.jsonl [NATS_URL]
//
// Prints one JSON line per report: {"line", "report_id", "outcome", "attempts", "reply"} (outcome: accepted,
// duplicate, rejected, refused by the server, unanswered). Exit code 1 when anything was not accepted.
"use strict";
const fs = require("fs");
const { connectAs, sleep } = require("./common");

async function send(nc, subject, payload, attempts = 10) {
  let delay = 200;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    try {
      const msg = await nc.request(subject, payload, { timeout: 5000 });
      const reply = JSON.parse(new TextDecoder().decode(msg.data));
      if (reply.type === "rejected.v1" && reply.retry && attempt < attempts) {
        await sleep(delay);
        delay = Math.min(delay * 2, 2000);
        continue;
      }
      return { reply, attempts: attempt };
    } catch (err) {
      // nats.js fails at once when the server refuses the subject: no retry can help
      if (err.code === "PERMISSIONS_VIOLATION") return { refused: err.message, attempts: attempt };
      if (err.code !== "TIMEOUT" && err.code !== "503") throw err;
      if (attempt < attempts) {
        await sleep(delay);
        delay = Math.min(delay * 2, 2000);
      }
    }
  }
  return { attempts };
}

async function main() {
  const [profilePath, file, url] = process.argv.slice(2);
  const { nc, profile } = await connectAs(profilePath, url);
  const [role, id] = profile.party.split(":");
  const subject = process.env.INTAKE_SUBJECT || `reintegration.intake.${role}.${id}`;
  let failed = false;
  const lines = fs.readFileSync(file, "utf8").split("\n");
  for (let i = 0; i < lines.length; i++) {
    const text = lines[i].trim();
    if (!text || text.startsWith("#")) continue;
    const report = JSON.parse(text);
    if (!report.report_id) throw new Error(`line ${i + 1}: no report_id (every report needs its own)`);
    const { reply, refused, attempts } = await send(nc, subject, new TextEncoder().encode(text));
    let outcome = "unanswered";
    if (refused) outcome = "refused by the server";
    else if (reply && reply.type === "accepted.v1") outcome = reply.duplicate ? "duplicate" : "accepted";
    else if (reply) outcome = "rejected";
    if (outcome !== "accepted" && outcome !== "duplicate") failed = true;
    console.log(JSON.stringify({ line: i + 1, report_id: report.report_id, outcome, attempts, reply: reply || refused || null }));
  }
  await nc.close();
  process.exit(failed ? 1 : 0);
}

main().catch((err) => { console.error(err.message); process.exit(2); });
