// The activity log against a real PostgreSQL: rows come back as recorded, newest first, a page at
// a time; the table refuses changes to recent history even from its owner; rows recorded while
// PostgreSQL is away are written in order when it returns, and those beyond the buffer are
// counted and said to be missing; a flood of auth failures costs a bounded number of rows and
// still counts every failure.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "integration/support/postgres.hpp"
#include "integration/support/wait.hpp"
#include "sluice/core/clock.hpp"
#include "sluice/store/activity_log.hpp"

namespace it = sluice::it;
using namespace std::chrono_literals;
using ::testing::HasSubstr;

namespace sluice {
namespace {

// An hour ago on a whole second, plus 123 ms that must survive the round trip (recent: the writer
// prunes rows older than the retention as it starts).
const std::int64_t base_ms = now_ms() / 1000 * 1000 - 3600000 + 123;

// One PostgreSQL server for the suite (a test that stops it starts it again); each test has a
// schema of its own.
class ActivityLog : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        try {
            server_ = std::make_unique<it::postgres_server>();
        } catch (const std::exception& e) {
            setup_error_ = e.what();
        }
    }
    static void TearDownTestSuite() { server_.reset(); }

    void SetUp() override {
        ASSERT_TRUE(server_) << "PostgreSQL did not start: " << setup_error_;
        if (!server_->running()) server_->start();  // a test that failed while it was stopped
        pg_.dsn = server_->dsn();
        pg_.schema = "activity_" + std::to_string(++schemas_);
    }
    // A test that stops PostgreSQL must not leave it stopped for the next.
    void TearDown() override {
        if (server_ && !server_->running()) server_->start();
    }

    std::unique_ptr<activity_log> make_log(const activity_config& cfg = {}) {
        auto log = std::make_unique<activity_log>(pg_, cfg);
        const status s = log->prepare();
        EXPECT_TRUE(s.ok()) << s.message();
        return log;
    }
    std::string table() const { return pg_.schema + ".activity"; }
    it::pg_rows sql(const std::string& q, const std::vector<std::string>& params = {}) {
        return it::pg_query(server_->dsn(), q, params);
    }
    long long count(const std::string& where = "true") {
        return it::pg_count(server_->dsn(), "SELECT count(*) FROM " + table() + " WHERE " + where);
    }
    // Every row of the log, newest first, through query() a page at a time.
    std::vector<activity_row> all_rows(activity_log& log, activity_query q = {}) {
        std::vector<activity_row> out;
        for (int page = 0; page < 1000; ++page) {
            auto r = log.query(q);
            EXPECT_TRUE(r.ok()) << r.message();
            if (!r) break;
            out.insert(out.end(), r->rows.begin(), r->rows.end());
            if (!r->next_before_id) break;
            q.before_id = *r->next_before_id;
        }
        return out;
    }

    static inline std::unique_ptr<it::postgres_server> server_;
    static inline std::string setup_error_;
    static inline int schemas_ = 0;
    postgres_config pg_;
};

activity_event make_event(int i) {
    activity_event e;
    e.at_ms = base_ms + i * 1001;
    e.actor = "key-" + std::to_string(i % 3);
    e.action = i % 2 ? "reload" : "admin_request";
    e.target = "/v1/admin/thing/" + std::to_string(i) + (i == 7 ? " it's \"quoted\", tab\t and ünïcödé" : "");
    e.outcome = i % 4 == 0 ? "refused" : "ok";
    e.request_id = "req-" + std::to_string(i);
    e.client = "10.0.0." + std::to_string(i) + ":5555";
    e.detail = {{"i", i}, {"nested", {{"list", {1, 2, 3}}, {"text", "x'y\"z"}}}};
    return e;
}

std::vector<std::string> targets(const std::vector<activity_row>& rows) {
    std::vector<std::string> out;
    for (const auto& r : rows) out.push_back(r.event.target);
    return out;
}

// What PostgreSQL refused, with its message; "" when the statement went through.
std::string refusal(it::pg_client& c, const std::string& statement) {
    try {
        c.query(statement);
    } catch (const std::runtime_error& e) {
        return e.what();
    }
    return "";
}

TEST_F(ActivityLog, RowsComeBackNewestFirstWithEveryColumnAndPagesCoverEachRowOnce) {
    auto log = make_log();
    log->start();
    std::vector<activity_event> sent;
    for (int i = 0; i < 25; ++i) {
        sent.push_back(make_event(i));
        log->record(sent.back());
    }
    ASSERT_TRUE(log->flush(10s));

    activity_query q;
    q.limit = 1000;
    auto all = log->query(q);
    ASSERT_TRUE(all.ok()) << all.message();
    ASSERT_EQ(all->rows.size(), 25u);
    EXPECT_FALSE(all->next_before_id) << "one page held every row";
    for (std::size_t k = 0; k < all->rows.size(); ++k) {
        const activity_row& row = all->rows[k];
        const activity_event& want = sent[sent.size() - 1 - k];
        SCOPED_TRACE("row " + std::to_string(k) + " (" + want.request_id + ")");
        if (k > 0) {
            EXPECT_LT(row.id, all->rows[k - 1].id) << "newest first";
        }
        EXPECT_EQ(row.event.at_ms, want.at_ms);
        EXPECT_EQ(row.event.actor, want.actor);
        EXPECT_EQ(row.event.action, want.action);
        EXPECT_EQ(row.event.target, want.target);
        EXPECT_EQ(row.event.outcome, want.outcome);
        EXPECT_EQ(row.event.request_id, want.request_id);
        EXPECT_EQ(row.event.client, want.client);
        EXPECT_EQ(row.event.detail, want.detail);
    }

    // Pages of 7 by the cursor: 7 + 7 + 7 + 4, each row once, still newest first.
    q.limit = 7;
    std::vector<activity_row> paged;
    int pages = 0;
    for (; pages < 10; ++pages) {
        auto page = log->query(q);
        ASSERT_TRUE(page.ok()) << page.message();
        paged.insert(paged.end(), page->rows.begin(), page->rows.end());
        if (!page->next_before_id) break;
        EXPECT_EQ(*page->next_before_id, page->rows.back().id);
        q.before_id = *page->next_before_id;
    }
    EXPECT_EQ(pages + 1, 4);
    ASSERT_EQ(paged.size(), all->rows.size());
    for (std::size_t k = 0; k < paged.size(); ++k) EXPECT_EQ(paged[k].id, all->rows[k].id);

    // A row recorded without a time gets the wall clock's.
    const std::int64_t before = now_ms();
    activity_event now_event;
    now_event.action = "start";
    now_event.target = "sluice";
    log->record(now_event);
    ASSERT_TRUE(log->flush(10s));
    q = {};
    q.limit = 1;
    auto newest = log->query(q);
    ASSERT_TRUE(newest.ok() && newest->rows.size() == 1u);
    EXPECT_EQ(newest->rows[0].event.action, "start");
    EXPECT_EQ(newest->rows[0].event.actor, "system");
    EXPECT_EQ(newest->rows[0].event.detail, nlohmann::json::object());
    EXPECT_GE(newest->rows[0].event.at_ms, before);
    EXPECT_LE(newest->rows[0].event.at_ms, now_ms());
    ASSERT_TRUE(newest->next_before_id);

    const activity_figures f = log->figures();
    EXPECT_EQ(f.recorded, 26u);
    EXPECT_EQ(f.written, 26u);
    EXPECT_EQ(f.dropped, 0u);
    EXPECT_EQ(f.buffered, 0u);
    EXPECT_EQ(f.last_error, "");
    EXPECT_TRUE(log->stop(5s));
}

TEST_F(ActivityLog, TextPostgresWouldRefuseIsCleanedInsteadOfStoppingTheLog) {
    auto log = make_log();
    log->start();
    activity_event bad;
    bad.action = "admin_request";
    bad.target = "/v1/\xff\xfe" + std::string("nul\0byte", 8);
    bad.detail = {{"text", std::string("a\0b", 3)}, {"bytes", "\xc3\x28"}};
    log->record(bad);
    activity_event good;
    good.action = "reload";
    good.target = "after";
    log->record(good);
    ASSERT_TRUE(log->flush(10s)) << log->figures().last_error;
    const auto rows = sql("SELECT target, detail->>'text', detail->>'bytes' FROM " + table() + " ORDER BY id");
    ASSERT_EQ(rows.size(), 2u);
    EXPECT_EQ(rows[0][0], "/v1/\uFFFD\uFFFDnulbyte");
    EXPECT_EQ(rows[0][1], "a\uFFFDb");
    EXPECT_EQ(rows[0][2], "\uFFFD(");
    EXPECT_EQ(rows[1][0], "after");
}

TEST_F(ActivityLog, FiltersByActorActionAndTimeNarrowTheRows) {
    auto log = make_log();
    log->start();
    for (int i = 0; i < 12; ++i) {
        activity_event e;
        e.at_ms = base_ms + i * 1000;
        e.actor = i % 3 == 0 ? "alice" : "bob";
        e.action = i % 2 ? "reload" : "ingest";
        e.target = std::to_string(i);
        log->record(e);
    }
    ASSERT_TRUE(log->flush(10s));
    const auto rows = [&](activity_query q) { return targets(all_rows(*log, q)); };
    using v = std::vector<std::string>;

    activity_query q;
    q.actor = "alice";
    EXPECT_EQ(rows(q), (v{"9", "6", "3", "0"}));
    q = {};
    q.action = "reload";
    EXPECT_EQ(rows(q), (v{"11", "9", "7", "5", "3", "1"}));
    q.actor = "alice";
    EXPECT_EQ(rows(q), (v{"9", "3"}));
    q = {};
    q.since_ms = base_ms + 3000;  // inclusive
    q.until_ms = base_ms + 6000;  // exclusive
    EXPECT_EQ(rows(q), (v{"5", "4", "3"}));
    q = {};
    q.since_ms = base_ms + 9999;
    EXPECT_EQ(rows(q), (v{"11", "10"}));
    q = {};
    q.until_ms = base_ms + 1000;
    EXPECT_EQ(rows(q), (v{"0"}));
    q = {};
    q.actor = "nobody";
    EXPECT_EQ(rows(q), v{});

    // A filter and the cursor together: bob's rows two at a time, each once.
    q = {};
    q.actor = "bob";
    q.limit = 2;
    EXPECT_EQ(rows(q), (v{"11", "10", "8", "7", "5", "4", "2", "1"}));
    auto first = log->query(q);
    ASSERT_TRUE(first.ok());
    EXPECT_EQ(targets(first->rows), (v{"11", "10"}));

    // The limit is held to 1..1000.
    q = {};
    q.limit = 0;
    auto one = log->query(q);
    ASSERT_TRUE(one.ok());
    EXPECT_EQ(one->rows.size(), 1u);
    q.limit = 1000000;
    auto many = log->query(q);
    ASSERT_TRUE(many.ok());
    EXPECT_EQ(many->rows.size(), 12u);
    EXPECT_FALSE(many->next_before_id);
}

TEST_F(ActivityLog, RecentRowsCannotBeChangedOrRemovedEvenByTheTablesOwner) {
    activity_config cfg;
    cfg.retention_days = 30;
    auto log = make_log(cfg);
    log->start();
    activity_event e = make_event(1);
    e.at_ms = 0;  // now: younger than the retention
    log->record(e);
    ASSERT_TRUE(log->flush(10s));

    it::pg_client c(server_->dsn());
    // The same role as the log's (the same DSN), and it owns the table.
    EXPECT_EQ(c.scalar("SELECT tableowner::text FROM pg_tables WHERE schemaname = $1 AND tablename = 'activity'",
                       {pg_.schema}),
              c.scalar("SELECT current_user::text"));
    for (const std::string& statement :
         {"UPDATE " + table() + " SET outcome = 'ok'", "UPDATE " + table() + " SET detail = '{}' WHERE id > 0",
          "DELETE FROM " + table(), "DELETE FROM " + table() + " WHERE action = 'reload'", "TRUNCATE " + table(),
          "TRUNCATE " + table() + " RESTART IDENTITY CASCADE"}) {
        const std::string refused = refusal(c, statement);
        EXPECT_THAT(refused, HasSubstr("the activity log is append-only")) << statement << " was not refused";
    }
    auto rows = all_rows(*log);
    ASSERT_EQ(rows.size(), 1u);
    EXPECT_EQ(rows[0].event.outcome, e.outcome);
    EXPECT_EQ(rows[0].event.detail, e.detail);

    // INSERT is allowed: rows older than the retention and one just inside it.
    c.query("INSERT INTO " + table() + " (at, actor, action, target, outcome) VALUES"
            " (now() - interval '40 days', 'system', 'old', 'a', 'ok'),"
            " (now() - interval '31 days', 'system', 'old', 'b', 'ok'),"
            " (now() - interval '29 days', 'system', 'young', 'c', 'ok')");
    EXPECT_THAT(refusal(c, "DELETE FROM " + table() + " WHERE action = 'young'"), HasSubstr("append-only"));
    auto pruned = log->prune_once(1);
    ASSERT_TRUE(pruned.ok()) << pruned.message();
    EXPECT_EQ(pruned.value(), 1);
    pruned = log->prune_once(1000);
    ASSERT_TRUE(pruned.ok()) << pruned.message();
    EXPECT_EQ(pruned.value(), 1);
    pruned = log->prune_once();
    ASSERT_TRUE(pruned.ok());
    EXPECT_EQ(pruned.value(), 0);
    EXPECT_EQ(count("action = 'old'"), 0);
    EXPECT_EQ(count("action = 'young'"), 1);
    EXPECT_EQ(count(), 2);
    EXPECT_EQ(log->figures().pruned, 2u);
    // By hand, a row older than the retention can go (the trigger stands only for recent history).
    c.query("INSERT INTO " + table() + " (at, actor, action, target, outcome) VALUES"
            " (now() - interval '31 days', 'system', 'old', 'd', 'ok')");
    EXPECT_EQ(refusal(c, "DELETE FROM " + table() + " WHERE action = 'old'"), "");
    EXPECT_TRUE(log->stop(5s));

    // prepare() again with a shorter retention: the trigger follows it, and is not doubled.
    activity_config shorter;
    shorter.retention_days = 10;
    auto again = make_log(shorter);
    EXPECT_EQ(it::pg_count(server_->dsn(), "SELECT count(*) FROM pg_trigger WHERE tgrelid = $1::regclass AND NOT tgisinternal",
                           {table()}),
              2);
    EXPECT_EQ(refusal(c, "DELETE FROM " + table() + " WHERE action = 'young'"), "");
    EXPECT_THAT(refusal(c, "DELETE FROM " + table()), HasSubstr("append-only"));
    EXPECT_EQ(count(), 1);
}

TEST_F(ActivityLog, RowsRecordedWhilePostgresIsAwayAreWrittenInOrderWhenItReturns) {
    auto log = make_log();
    log->start();
    std::vector<std::string> sent;
    const auto record = [&](const std::string& target) {
        activity_event e;
        e.action = "ingest";
        e.target = target;
        log->record(e);
        sent.push_back(target);
    };
    for (int i = 0; i < 5; ++i) record("before-" + std::to_string(i));
    ASSERT_TRUE(log->flush(10s));

    server_->stop();
    for (int i = 0; i < 40; ++i) {
        record("during-" + std::to_string(i));
        std::this_thread::sleep_for(50ms);
    }
    EXPECT_TRUE(it::wait_until(5s, [&] { return !log->figures().last_error.empty(); }))
        << "the log did not notice PostgreSQL was away";
    EXPECT_FALSE(log->flush(1500ms)) << "rows cannot be written while PostgreSQL is away";
    EXPECT_EQ(log->figures().buffered, 40u);
    server_->start();
    for (int i = 0; i < 5; ++i) record("after-" + std::to_string(i));
    ASSERT_TRUE(log->flush(30s)) << log->figures().last_error;

    // Ids ascend in the order the rows were recorded, and every one is there once.
    const auto rows = sql("SELECT target FROM " + table() + " ORDER BY id");
    std::vector<std::string> stored;
    for (const auto& r : rows) stored.push_back(r[0]);
    EXPECT_EQ(stored, sent);
    const activity_figures f = log->figures();
    EXPECT_EQ(f.dropped, 0u);
    EXPECT_EQ(f.buffered, 0u);
    EXPECT_EQ(f.written, sent.size());
    EXPECT_EQ(f.last_error, "");
    EXPECT_TRUE(log->stop(5s));
}

TEST_F(ActivityLog, AFullBufferCountsTheRowsItDropsAndOneRowSaysHowManyWereLost) {
    activity_config cfg;
    cfg.buffer_rows = 100;
    auto log = make_log(cfg);
    log->start();
    activity_event first;
    first.action = "start";
    first.target = "first";
    log->record(first);
    ASSERT_TRUE(log->flush(10s));

    server_->stop();
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < 150; ++i) {
        activity_event e;
        e.action = "ingest";
        e.target = "row-" + std::to_string(i);
        log->record(e);
    }
    EXPECT_LT(it::seconds_since(t0), 0.5) << "record() waited for PostgreSQL";
    activity_figures f = log->figures();
    EXPECT_EQ(f.recorded, 151u);
    EXPECT_EQ(f.dropped, 50u);
    EXPECT_EQ(f.buffered, 100u);
    std::this_thread::sleep_for(1500ms);  // at least one failed attempt with the gap at its end
    server_->start();
    ASSERT_TRUE(log->flush(30s)) << log->figures().last_error;

    const auto rows = sql("SELECT actor, action, target, outcome, detail::text FROM " + table() + " ORDER BY id");
    ASSERT_EQ(rows.size(), 102u);
    EXPECT_EQ(rows[0][2], "first");
    for (int i = 0; i < 100; ++i) EXPECT_EQ(rows[static_cast<std::size_t>(i) + 1][2], "row-" + std::to_string(i));
    EXPECT_EQ(rows[101], (std::vector<std::string>{"system", "activity_dropped", "activity", "dropped", R"({"rows": 50})"}));

    // Rows after it are written as usual, with no second account of the same gap.
    activity_event after;
    after.action = "ingest";
    after.target = "after";
    log->record(after);
    ASSERT_TRUE(log->flush(10s));
    EXPECT_EQ(count(), 103);
    EXPECT_EQ(count("action = 'activity_dropped'"), 1);
    EXPECT_EQ(sql("SELECT target FROM " + table() + " ORDER BY id DESC LIMIT 1")[0][0], "after");
    f = log->figures();
    EXPECT_EQ(f.dropped, 50u);
    EXPECT_EQ(f.written, 103u);
    EXPECT_TRUE(log->stop(5s));
}

TEST_F(ActivityLog, AFloodOfAuthFailuresCostsFewRowsAndCountsEveryOne) {
    activity_config cfg;
    cfg.auth_failures_per_minute = 20;
    auto log = make_log(cfg);
    log->start();
    const std::vector<std::string> clients = {"192.0.2.1", "192.0.2.2", "2001:db8::3"};
    const std::int64_t t0 = now_ms();
    for (int i = 0; i < 10000; ++i)
        log->auth_failure(clients[static_cast<std::size_t>(i % 3)], "/v1/features/lookup",
                          i % 2 ? "unknown key" : "missing key", "req-" + std::to_string(i));
    const std::int64_t t1 = now_ms();
    ASSERT_TRUE(log->stop(10s)) << "the open minute's counts were not written";
    const long long minutes = t1 / 60000 - t0 / 60000 + 1;  // 2 when the calls crossed a minute

    const long long total = count();
    EXPECT_LE(total, minutes * (20 + 3)) << "one row per failure within the allowance, one per client after";
    const long long single = count("action = 'auth_failure'");
    EXPECT_LE(single, 20 * minutes);
    EXPECT_GE(single, 20);
    for (const auto& r : sql("SELECT actor, target, outcome, client, detail->>'reason', request_id FROM " + table() +
                             " WHERE action = 'auth_failure' ORDER BY id")) {
        EXPECT_EQ(r[0], "anonymous");
        EXPECT_EQ(r[1], "/v1/features/lookup");
        EXPECT_EQ(r[2], "refused");
        EXPECT_THAT(clients, ::testing::Contains(r[3]));
        EXPECT_THAT(r[4], HasSubstr(" key"));
        EXPECT_THAT(r[5], ::testing::StartsWith("req-"));
    }
    long long summed = 0;
    std::set<std::string> summary_clients;
    for (const auto& r : sql("SELECT actor, target, outcome, client, detail::text FROM " + table() +
                             " WHERE action = 'auth_failures' ORDER BY id")) {
        EXPECT_EQ(r[0], "anonymous");
        EXPECT_EQ(r[1], "http");
        EXPECT_EQ(r[2], "refused");
        summary_clients.insert(r[3]);
        const auto detail = nlohmann::json::parse(r[4]);
        const long long n = detail.at("count").get<long long>();
        summed += n;
        long long by_reason = 0;
        for (const auto& [reason, k] : detail.at("reasons").items()) {
            EXPECT_THAT(reason, HasSubstr(" key"));
            by_reason += k.get<long long>();
        }
        EXPECT_EQ(by_reason, n);
        const auto minute = parse_rfc3339(detail.at("minute").get<std::string>());
        ASSERT_TRUE(minute) << r[4];
        EXPECT_EQ(*minute % 60000, 0);
        EXPECT_GE(*minute, t0 - t0 % 60000);
        EXPECT_LE(*minute, t1);
    }
    EXPECT_EQ(single + summed, 10000) << "every failure is a row or counted in one";
    EXPECT_EQ(summary_clients, std::set<std::string>(clients.begin(), clients.end()));
    const activity_figures f = log->figures();
    EXPECT_EQ(f.recorded, static_cast<std::uint64_t>(total));
    EXPECT_EQ(f.written, static_cast<std::uint64_t>(total));
}

TEST_F(ActivityLog, BeyondAThousandClientAddressesFailuresAreCountedUnderOther) {
    activity_config cfg;
    cfg.auth_failures_per_minute = 0;
    auto log = make_log(cfg);
    log->start();
    const std::int64_t t0 = now_ms();
    for (int i = 0; i < 1500; ++i)
        log->auth_failure("198.51.100." + std::to_string(i), "/v1/admin/reload", "reason " + std::to_string(i % 15), "");
    const std::int64_t t1 = now_ms();
    ASSERT_TRUE(log->stop(10s));
    const long long minutes = t1 / 60000 - t0 / 60000 + 1;
    EXPECT_EQ(count("action <> 'auth_failures'"), 0);
    EXPECT_LE(count(), 1001 * minutes);
    EXPECT_EQ(it::pg_count(server_->dsn(), "SELECT sum((detail->>'count')::bigint) FROM " + table()), 1500);
    if (minutes == 1) {
        EXPECT_EQ(count(), 1001);
        const auto other = sql("SELECT detail::text FROM " + table() + " WHERE client = 'other'");
        ASSERT_EQ(other.size(), 1u);
        const auto detail = nlohmann::json::parse(other[0][0]);
        EXPECT_EQ(detail.at("count"), 500);
        EXPECT_LE(detail.at("reasons").size(), 11u) << "ten reasons by name, the rest together";
    }
}

}  // namespace
}  // namespace sluice
