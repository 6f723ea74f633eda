// Every method of gorsejs's Gorse client, called in order against the server at argv[2] with
// the key argv[3]; prints one JSON report: per step, {ok: answer} or {error: {code, message}}
// (a GorseException, as a platform's code catches it) or {crash: text}; and which of the
// client's methods were called (test_gorsejs.py checks that is all of them).
const { Gorse, GorseException } = require("gorsejs");

const [endpoint, secret] = process.argv.slice(2);
const client = new Gorse({ endpoint, secret });
const report = { steps: {}, called: [] };

const counted = new Proxy(client, {
  get(target, name) {
    const value = target[name];
    if (typeof value === "function") {
      if (!report.called.includes(name)) report.called.push(name);
      return value.bind(target);
    }
    return value;
  },
});

async function step(name, call) {
  try {
    report.steps[name] = { ok: await call(counted) };
  } catch (e) {
    report.steps[name] =
      e instanceof GorseException
        ? { error: { code: e.code, message: e.message } }
        : { crash: String(e) };
  }
}

const at = "2022-08-07T00:26:46Z";

(async () => {
  // users
  await step("insertUser", (c) =>
    c.insertUser({ UserId: "js-user", Labels: ["a", "b", "c"], Comment: "comment" }));
  await step("getUser", (c) => c.getUser("js-user"));
  await step("updateUser", (c) => c.updateUser("js-user", { UserId: "js-user", Comment: "new" }));
  await step("getUser after updateUser", (c) => c.getUser("js-user"));
  await step("insertUsers", (c) => c.insertUsers([{ UserId: "js-u2" }, { UserId: "js-u3" }]));
  await step("getUsers", (c) => c.getUsers({ n: 2 }));
  await step("getUsers next page", async (c) => {
    const first = await c.getUsers({ n: 2 });
    return c.getUsers({ n: 2, Cursor: first.Cursor });
  });
  await step("getUserNeighbors", (c) =>
    c.getUserNeighbors({ userId: "u0", cursorOptions: { n: 2 } }));
  await step("deleteUser", (c) => c.deleteUser("js-u3"));
  await step("getUser after deleteUser", (c) => c.getUser("js-u3"));

  // items
  await step("upsertItem", (c) =>
    c.upsertItem({
      ItemId: "js-item", IsHidden: true, Labels: ["a", "b", "c"], Categories: ["d", "e"],
      Timestamp: at, Comment: "comment",
    }));
  await step("getItem", (c) => c.getItem("js-item"));
  await step("updateItem", (c) =>
    c.updateItem("js-item", { ItemId: "js-item", IsHidden: false, Timestamp: at, Comment: "new" }));
  await step("insertItemCategory", (c) => c.insertItemCategory("js-item", "f"));
  await step("deleteItemCategory", (c) => c.deleteItemCategory("js-item", "d"));
  await step("getItem after changes", (c) => c.getItem("js-item"));
  await step("upsertItems", (c) =>
    c.upsertItems([
      { ItemId: "js-new-1", IsHidden: false, Timestamp: "2025-01-01T00:00:00Z", Categories: ["b"] },
      { ItemId: "js-new-2", IsHidden: false, Timestamp: "2025-01-02T00:00:00Z" },
    ]));
  await step("getItems", (c) => c.getItems({ n: 3 }));
  await step("getItemNeighbors", (c) =>
    c.getItemNeighbors({ itemId: "i0", cursorOptions: { n: 3 } }));
  await step("getItemNeighbors in a category", (c) =>
    c.getItemNeighbors({ itemId: "i6", category: "b", cursorOptions: { n: 10 } }));
  await step("deleteItem", (c) => c.deleteItem("js-item"));
  await step("getItem after deleteItem", (c) => c.getItem("js-item"));

  // feedback
  await step("insertFeedbacks", (c) =>
    c.insertFeedbacks([
      { FeedbackType: "like", UserId: "js-user", ItemId: "i0", Timestamp: at },
      { FeedbackType: "read", UserId: "js-user", ItemId: "i6", Timestamp: at },
      { FeedbackType: "read", UserId: "js-user", ItemId: "i7", Timestamp: at },
    ]));
  await step("upsertFeedbacks", (c) =>
    c.upsertFeedbacks([
      { FeedbackType: "like", UserId: "js-user", ItemId: "i0", Timestamp: "2023-01-01T00:00:00Z" },
    ]));
  await step("getFeedback", (c) => c.getFeedback({ type: "like", userId: "js-user", itemId: "i0" }));
  await step("getFeedbacks", (c) => c.getFeedbacks(undefined, { n: 2 }));
  await step("getFeedbacks of a type", (c) => c.getFeedbacks("read", { n: 100 }));
  await step("getItemFeedback", (c) => c.getItemFeedback("i7"));
  await step("getItemFeedbackByType", (c) => c.getItemFeedbackByType("i6", "read"));
  await step("getUserFeedback", (c) => c.getUserFeedback("js-user"));
  await step("getUserFeedbackByType", (c) => c.getUserFeedbackByType("js-user", "read"));
  await step("deleteFeedback", (c) =>
    c.deleteFeedback({ type: "read", userId: "js-user", itemId: "i7" }));
  await step("getUserFeedbackByType after deleteFeedback", (c) =>
    c.getUserFeedbackByType("js-user", "read"));

  // recommendations
  await step("getRecommend", (c) => c.getRecommend({ userId: "bob", cursorOptions: { n: 3 } }));
  await step("getRecommend in a category", (c) =>
    c.getRecommend({ userId: "bob", category: "a", cursorOptions: { n: 10 } }));
  await step("getRecommend with write-back", (c) =>
    c.getRecommend({ userId: "u3", writeBackType: "read", cursorOptions: { n: 1 } }));
  await step("getUserFeedbackByType after write-back", (c) => c.getUserFeedbackByType("u3", "read"));
  await step("getSessionRecommend", (c) =>
    c.getSessionRecommend(
      [{ FeedbackType: "like", UserId: "anon", ItemId: "i6", Timestamp: at }],
      { cursorOptions: { n: 3 } },
    ));
  await step("getPopular", (c) => c.getPopular({ cursorOptions: { n: 3 } }));
  await step("getPopular in a category", (c) =>
    c.getPopular({ category: "b", cursorOptions: { n: 10 } }));
  await step("getLatest", (c) => c.getLatest({ cursorOptions: { n: 3 } }));

  // a wrong key
  const stranger = new Gorse({ endpoint, secret: "not-a-key" });
  try {
    await stranger.getUser("bob");
    report.steps["wrong key"] = { ok: "answered" };
  } catch (e) {
    report.steps["wrong key"] = { error: { code: e.code, message: e.message } };
  }

  report.methods = Object.getOwnPropertyNames(Gorse.prototype).filter((m) => m !== "constructor");
  process.stdout.write(JSON.stringify(report));
})();
