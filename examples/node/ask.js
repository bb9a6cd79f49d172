// An auditor's question over NATS with its own credentials (each answer leaves a disclosure record naming it):
//
//   node ask.js PROFILE.json QUESTION CASE_ID [NATS_URL]     (QUESTION: history, applied, verify, dossier)
//
// Prints the reply: {"question", "asked_by", "disclosure", "answered_at", "answer"}, or the refusal
// {"error", "code", "field", "retry"} with exit code 1.
"use strict";
const { connectAs } = require("./common");

async function main() {
  const [profilePath, question, caseId, url] = process.argv.slice(2);
  const { nc } = await connectAs(profilePath, url);
  const msg = await nc.request(`reintegration.audit.${question}`, JSON.stringify({ case_id: caseId }),
    { timeout: 10000 });
  const reply = JSON.parse(new TextDecoder().decode(msg.data));
  console.log(JSON.stringify(reply));
  await nc.close();
  process.exit(reply.error ? 1 : 0);
}

main().catch((err) => { console.error(`${err.code || ""} ${err.message}`); process.exit(2); });
