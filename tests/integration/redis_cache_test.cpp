// The Redis cache on its own, against a real server: a hash is written only over an older (or no)
// _event_time, with every field and the set's TTL; many keys go in several transactions; a key
// that another client makes newer while a write is under way keeps the newer value.

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "common/small_set.hpp"
#include "integration/support/redis.hpp"
#include "sluice/store/redis_cache.hpp"

namespace it = sluice::it;

namespace sluice {
namespace {

constexpr std::int64_t k_ttl_ms = 3600 * 1000;

config cache_config(int port) {
    config cfg;
    feature_set_config set = testing_support::small_set({{"n", field_type::int64}, {"note", field_type::string}});
    set.ttl_ms = k_ttl_ms;
    cfg.feature_sets.push_back(set);
    redis_config rc;
    rc.port = port;
    cfg.redis = rc;
    return cfg;
}

record make_record(const std::string& key, std::int64_t time, std::int64_t n, const std::string& note) {
    record r;
    r.key = key;
    r.event_time_ms = time;
    r.ingested_at_ms = time + 1;
    r.values = {value{n}, value{note}};
    return r;
}

std::vector<const record*> pointers(const std::vector<record>& records) {
    std::vector<const record*> out;
    for (const auto& r : records) out.push_back(&r);
    return out;
}

class RedisCache : public ::testing::Test {
protected:
    it::redis_server server;
    config cfg = cache_config(server.port());
    latest_cache_ptr cache = make_redis_cache(cfg);
    it::redis_client client{server.port()};

    static std::string hash_key(const std::string& key) { return "sluice:s:" + key; }
    void put(const std::string& key, std::int64_t time, const std::string& note) {
        client.command({"HSET", hash_key(key), "_event_time", std::to_string(time), "note", note});
    }
};

TEST_F(RedisCache, AHashIsReplacedOnlyByANewerEvent) {
    put("newer", 200, "\"kept\"");
    put("older", 50, "\"old\"");
    put("same", 100, "\"first\"");
    const std::vector<record> records = {make_record("newer", 100, 1, "late"), make_record("older", 100, 2, "new"),
                                         make_record("same", 100, 3, "second"), make_record("absent", 100, 4, "a\"b")};
    ASSERT_TRUE(cache->apply(pointers(records)).ok());

    auto newer = client.hgetall(hash_key("newer"));
    EXPECT_EQ(newer["_event_time"], "200");
    EXPECT_EQ(newer["note"], "\"kept\"");
    EXPECT_EQ(newer.count("n"), 0u) << "a late event wrote into a newer hash";
    EXPECT_EQ(client.hgetall(hash_key("same"))["note"], "\"first\"") << "an equal event time replaced the hash";

    auto older = client.hgetall(hash_key("older"));
    EXPECT_EQ(older["_event_time"], "100");
    EXPECT_EQ(older["_ingested_at"], "101");
    EXPECT_EQ(older["n"], "2");
    EXPECT_EQ(older["note"], "\"new\"");

    auto absent = client.hgetall(hash_key("absent"));
    EXPECT_EQ(absent["_event_time"], "100");
    EXPECT_EQ(absent["note"], "\"a\\\"b\"");
    const long long ttl = client.ttl(hash_key("absent"));
    EXPECT_GT(ttl, 0);
    EXPECT_LE(ttl, k_ttl_ms / 1000);
    EXPECT_GT(client.ttl(hash_key("older")), 0) << "a replaced hash did not get the set's TTL";

    // What the cache reads back is what it wrote.
    auto read = cache->read_latest(0, "older");
    ASSERT_TRUE(read.ok()) << read.message();
    ASSERT_TRUE(read.value().has_value());
    EXPECT_EQ(read.value()->event_time_ms, 100);
    EXPECT_EQ(std::get<std::int64_t>(read.value()->values[0]), 2);
}

TEST_F(RedisCache, ManyKeysAndRepeatedKeysKeepTheNewestOfEach) {
    // More keys than one transaction holds, and keys that come twice close together (in one
    // transaction's reach) or far apart: the newest wins either way.
    std::vector<record> records;
    for (int i = 0; i < 1000; ++i) {
        records.push_back(make_record("k" + std::to_string(i), 1000 + i, i, "first"));
        if (i == 20) {
            records.push_back(make_record("k5", 5000, 55, "newer second"));
            records.push_back(make_record("k7", 10, 77, "older second"));
        }
    }
    records.push_back(make_record("k900", 10, 9, "older, far"));
    ASSERT_TRUE(cache->apply(pointers(records)).ok());
    for (int i = 0; i < 1000; ++i) {
        auto h = client.hgetall(hash_key("k" + std::to_string(i)));
        if (i == 5) {
            EXPECT_EQ(h["_event_time"], "5000");
            EXPECT_EQ(h["n"], "55");
        } else {
            ASSERT_EQ(h["_event_time"], std::to_string(1000 + i)) << "k" << i;
            ASSERT_EQ(h["n"], std::to_string(i)) << "k" << i;
        }
    }
}

TEST_F(RedisCache, AKeyMadeNewerByAnotherClientMeanwhileKeepsTheNewerValue) {
    // The cache writes 100 keys over and over with ever newer times while another client writes
    // each key once with a time newer than all of them. From then on the cache must leave that
    // key alone, even when it read the key's time just before.
    constexpr int keys = 100;
    std::atomic<bool> done{false};
    std::atomic<int> rounds{0};
    std::string error;
    std::thread writer([&] {
        std::vector<record> records;
        for (int i = 0; i < keys; ++i) records.push_back(make_record("race" + std::to_string(i), 0, i, "cache"));
        for (std::int64_t round = 1; !done.load(); ++round) {
            for (auto& r : records) r.event_time_ms = 1'000'000 + round;
            if (auto s = cache->apply(pointers(records)); !s) {
                error = s.message();
                return;
            }
            rounds.fetch_add(1);
        }
    });
    // Each write of the other client lands while the cache is busy with a round, and the next
    // waits until the cache finished another one.
    it::redis_client other(server.port());
    const auto wait_for_a_round = [&] {
        const int seen = rounds.load();
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (rounds.load() <= seen + 1 && error.empty() && std::chrono::steady_clock::now() < deadline)
            std::this_thread::sleep_for(std::chrono::microseconds(100));
    };
    wait_for_a_round();
    for (int i = 0; i < keys; ++i) {
        other.command({"HSET", hash_key("race" + std::to_string(i)), "_event_time", "9000000000000", "note", "\"other\""});
        wait_for_a_round();
    }
    done.store(true);
    writer.join();
    ASSERT_TRUE(error.empty()) << error;
    for (int i = 0; i < keys; ++i) {
        auto h = client.hgetall(hash_key("race" + std::to_string(i)));
        EXPECT_EQ(h["_event_time"], "9000000000000") << "race" << i << " lost the other client's newer write";
        EXPECT_EQ(h["note"], "\"other\"") << "race" << i;
    }
}

TEST_F(RedisCache, ARestartedRedisIsWrittenAgainWithoutANewCache) {
    // Redis restarts empty (persistence off) under a cache whose writer connection was open: the
    // write that finds the connection dead may fail, but the cache reconnects and writes again,
    // with the guard and the TTL, and is healthy after it.
    const std::vector<record> before = {make_record("r1", 100, 1, "before")};
    ASSERT_TRUE(cache->apply(pointers(before)).ok());
    server.stop();
    server.start();
    it::redis_client fresh(server.port());
    fresh.command({"HSET", hash_key("r2"), "_event_time", "500", "note", "\"newer\""});

    const std::vector<record> after = {make_record("r1", 200, 2, "after"), make_record("r2", 300, 3, "older")};
    status s = cache->apply(pointers(after));
    if (!s) s = cache->apply(pointers(after));  // the first may be the one that found the old connection closed
    ASSERT_TRUE(s.ok()) << s.message();
    EXPECT_TRUE(cache->healthy());
    auto r1 = fresh.hgetall(hash_key("r1"));
    EXPECT_EQ(r1["_event_time"], "200");
    EXPECT_EQ(r1["note"], "\"after\"");
    EXPECT_GT(fresh.ttl(hash_key("r1")), 0);
    EXPECT_EQ(fresh.hgetall(hash_key("r2"))["note"], "\"newer\"") << "an older event overwrote a newer one after the restart";
}

TEST_F(RedisCache, AKeyThatIsNotAHashFailsTheWriteWithRedissReason) {
    client.command({"SET", hash_key("text"), "not a hash"});
    const std::vector<record> records = {make_record("text", 100, 1, "x")};
    auto s = cache->apply(pointers(records));
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.message().find("WRONGTYPE"), std::string::npos) << s.message();
    EXPECT_FALSE(cache->healthy());
    // The connection is still good for the next write.
    const std::vector<record> next = {make_record("fine", 100, 1, "x")};
    EXPECT_TRUE(cache->apply(pointers(next)).ok());
    EXPECT_EQ(client.hgetall(hash_key("fine"))["_event_time"], "100");
}

TEST_F(RedisCache, AnAclUserAndTheDefaultUserAuthenticateAndAWrongPasswordIsRefusedWithRedissReason) {
    // An ACL user allowed every command on the cache's keys only; the default user then needs a
    // password too (the fixture's client connected before, so it stays signed in).
    client.command({"ACL", "SETUSER", "feeds", "on", ">s3cret", "~sluice:*", "+@all"});
    client.command({"CONFIG", "SET", "requirepass", "admin pw"});
    const auto with = [&](const std::string& user, const std::string& password) {
        config c = cfg;
        c.redis->username = user;
        c.redis->password = password;
        return c;
    };

    const config as_user = with("feeds", "s3cret");
    const auto user_cache = make_redis_cache(as_user);
    const std::vector<record> first = {make_record("acl", 100, 1, "by feeds")};
    const auto s1 = user_cache->apply(pointers(first));
    ASSERT_TRUE(s1.ok()) << s1.message();
    EXPECT_EQ(client.hgetall(hash_key("acl"))["_event_time"], "100");
    EXPECT_TRUE(user_cache->healthy());

    const config as_default = with("", "admin pw");
    const auto default_cache = make_redis_cache(as_default);
    const std::vector<record> second = {make_record("acl", 200, 2, "by default")};
    const auto s2 = default_cache->apply(pointers(second));
    ASSERT_TRUE(s2.ok()) << s2.message();
    EXPECT_EQ(client.hgetall(hash_key("acl"))["_event_time"], "200");

    // A wrong password fails the write with Redis's reason, and writes nothing.
    const config wrong = with("feeds", "not it");
    const auto wrong_cache = make_redis_cache(wrong);
    const std::vector<record> third = {make_record("acl", 300, 3, "never")};
    const auto s3 = wrong_cache->apply(pointers(third));
    ASSERT_FALSE(s3.ok());
    EXPECT_NE(s3.message().find("WRONGPASS"), std::string::npos) << s3.message();
    EXPECT_FALSE(wrong_cache->healthy());
    EXPECT_EQ(client.hgetall(hash_key("acl"))["_event_time"], "200");
}

}  // namespace
}  // namespace sluice
