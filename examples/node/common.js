// What every example needs: a party's connection from its standard files (the profile <role>-<id>.json and the
// seed file it names), as `reintegration parties config` writes them beside the .creds file.
"use strict";
const fs = require("fs");
const path = require("path");
const { connect, nkeyAuthenticator } = require("nats");

function loadProfile(profilePath) {
  const profile = JSON.parse(fs.readFileSync(profilePath, "utf8"));
  const seed = fs.readFileSync(path.join(path.dirname(profilePath), profile.seed_file), "utf8").trim();
  return { profile, seed };
}

async function connectAs(profilePath, url) {
  const { profile, seed } = loadProfile(profilePath);
  const servers = url || profile.url || process.env.REINTEGRATION_NATS_URL || "nats://127.0.0.1:4222";
  // The inbox prefix is required: a party may subscribe to its own inbox only, so with the default `_INBOX`
  // every request would be refused.
  const nc = await connect({
    servers,
    authenticator: nkeyAuthenticator(new TextEncoder().encode(seed)),
    inboxPrefix: profile.inbox_prefix,
    name: `reintegration example ${profile.party}`,
  });
  return { nc, profile };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

module.exports = { connectAs, loadProfile, sleep };
