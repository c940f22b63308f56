import { track } from "opik";

export const answer = track(
  { entrypoint: true, name: "answer", params: [{ name: "question", type: "string", presence: "required" }] },
  async function answer(question) {
    console.log(`answering ${JSON.stringify(question)}`);
    return `42 for ${question}`;
  },
);

export const fail = track({ entrypoint: true, name: "fail" }, function fail(x) {
  console.error("about to fail");
  throw new Error("kaboom");
});

// The runner's timers are unref()'d: something must keep the event loop alive.
setInterval(() => {}, 1 << 30);
