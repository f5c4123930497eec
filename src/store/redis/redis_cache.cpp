#include <hiredis/hiredis.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <condition_variable>
#include <mutex>
#include <unordered_set>

#include "resp.hpp"
#include "sluice/config/columns.hpp"
#include "sluice/core/log.hpp"
#include "sluice/core/value_codec.hpp"
#include "sluice/store/redis_cache.hpp"

namespace sluice {

std::vector<std::string> auth_command(const redis_config& rc) {
    if (rc.username.empty()) return {"AUTH", rc.password};
    return {"AUTH", rc.username, rc.password};
}

std::string redis_key(const std::string& prefix, const std::string& set, const std::string& key) {
    return prefix + ":" + set + ":" + key;
}

result<std::optional<latest_entry>> decode_latest_fields(const std::vector<latest_column>& columns, const std::string& key,
                                                         const std::vector<std::string_view>& flat) {
    const auto millis = [](std::string_view text) {
        std::int64_t v = 0;
        std::from_chars(text.data(), text.data() + text.size(), v);
        return v;
    };
    if (flat.empty()) return std::optional<latest_entry>{};
    latest_entry e;
    e.key = key;
    e.values.resize(columns.size());
    bool have_time = false;
    for (std::size_t i = 0; i + 1 < flat.size(); i += 2) {
        const std::string_view name = flat[i];
        const std::string_view text = flat[i + 1];
        if (name == "_event_time") {
            e.event_time_ms = millis(text);
            have_time = true;
        } else if (name == "_ingested_at") {
            e.ingested_at_ms = millis(text);
        } else {
            for (std::size_t f = 0; f < columns.size(); ++f) {
                if (columns[f].name != name) continue;
                if (auto v = value_from_json_text(columns[f].type, text)) e.values[f] = std::move(*v);
            }
        }
    }
    if (!have_time) return std::optional<latest_entry>{};
    return std::optional<latest_entry>{std::move(e)};
}

result<std::optional<latest_entry>> decode_latest_hash(const std::vector<latest_column>& columns, const std::string& key,
                                                       const redisReply* reply) {
    if (reply->type != REDIS_REPLY_ARRAY) return std::optional<latest_entry>{};
    std::vector<std::string_view> flat;
    flat.reserve(reply->elements);
    for (std::size_t i = 0; i < reply->elements; ++i) flat.emplace_back(reply->element[i]->str, reply->element[i]->len);
    return decode_latest_fields(columns, key, flat);
}

namespace {

// An integer as decimal text, in a buffer of its own (no allocation per argument).
struct decimal {
    explicit decimal(std::int64_t v)
        : size(static_cast<std::size_t>(std::to_chars(digits, digits + sizeof digits, v).ptr - digits)) {}
    operator std::string_view() const { return {digits, size}; }
    char digits[24];
    std::size_t size;
};

// Keys per transaction: large enough to amortise its two round trips, small enough that its
// EXEC (a few microseconds per key) keeps Redis's other clients waiting for well under a
// millisecond.
constexpr std::size_t keys_per_transaction = 128;
// Transactions in a row that may lose to other writers of their keys (EXEC answers nil) before
// apply() gives up and reports a failure (the store writer then brings Redis up to date later).
// Each loss halves the chunk, so a busy key soon holds up only a transaction of its own.
constexpr int max_lost_in_a_row = 32;

struct reply_deleter {
    void operator()(redisReply* r) const { freeReplyObject(r); }
};
using reply_ptr = std::unique_ptr<redisReply, reply_deleter>;

/// One hiredis context used by one thread at a time; replaced after any error (hiredis contexts
/// cannot be reused after one).
class redis_connection {
public:
    /// environment: checked on every connect (claimed when the prefix has no owner yet); "" = not checked.
    explicit redis_connection(const redis_config& cfg, std::string environment = {})
        : cfg_(cfg), environment_(std::move(environment)) {}
    ~redis_connection() { reset(); }

    void reset() {
        if (ctx_) redisFree(ctx_);
        ctx_ = nullptr;
    }

    status ensure() {
        if (ctx_ && ctx_->err == 0) return status::success();
        reset();
        timeval tv{cfg_.timeout_ms / 1000, (cfg_.timeout_ms % 1000) * 1000};
        ctx_ = redisConnectWithTimeout(cfg_.host.c_str(), cfg_.port, tv);
        if (!ctx_ || ctx_->err) {
            std::string msg = ctx_ ? ctx_->errstr : "out of memory";
            reset();
            return status::failure("cannot connect to Redis at " + cfg_.host + ":" + std::to_string(cfg_.port) + ": " +
                                   msg);
        }
        redisSetTimeout(ctx_, tv);
        redisEnableKeepAlive(ctx_);
        if (!cfg_.password.empty()) {
            if (auto r = command(auth_command(cfg_)); !r) return status::failure(r.message());
        }
        if (cfg_.db != 0) {
            if (auto r = command({"SELECT", std::to_string(cfg_.db)}); !r) return status::failure(r.message());
        }
        if (!environment_.empty()) {
            auto owner = claim_prefix();
            if (!owner) return status::failure(owner.message());
            if (owner.value() != environment_) {
                reset();
                return status::failure("Redis prefix " + cfg_.key_prefix + " at " + cfg_.host + ":" +
                                           std::to_string(cfg_.port) + " belongs to environment " + owner.value() +
                                           "; this config is for environment " + environment_ +
                                           " (give it a key_prefix of its own)",
                                       error_kind::permanent);
            }
        }
        return status::success();
    }

    // Claims the prefix for this environment unless another has it; answers the owner.
    result<std::string> claim_prefix() {
        const std::string key = cfg_.key_prefix + ":__environment";
        if (auto r = command({"SET", key, environment_, "NX"}); !r) return result<std::string>::failure(r.message());
        auto r = command({"GET", key});
        if (!r) return result<std::string>::failure(r.message());
        if (r.value()->type != REDIS_REPLY_STRING) return environment_;
        return std::string(r.value()->str, r.value()->len);
    }

    result<reply_ptr> command(const std::vector<std::string>& args) {
        if (auto s = ensure(); !s) return result<reply_ptr>::failure(s.message(), s.kind());
        append(args);
        return read_reply();
    }

    // A command already in RESP (append_resp_bulk).
    void append_formatted(const std::string& command) { redisAppendFormattedCommand(ctx_, command.data(), command.size()); }

    void append(const std::vector<std::string>& args) {
        std::vector<const char*> argv;
        std::vector<size_t> lens;
        argv.reserve(args.size());
        lens.reserve(args.size());
        for (const auto& a : args) {
            argv.push_back(a.data());
            lens.push_back(a.size());
        }
        redisAppendCommandArgv(ctx_, static_cast<int>(args.size()), argv.data(), lens.data());
    }

    // The next reply; an error reply is a failure.
    result<reply_ptr> read_reply() {
        auto r = read_any();
        if (r && r.value()->type == REDIS_REPLY_ERROR)
            return result<reply_ptr>::failure("Redis: " + std::string(r.value()->str, r.value()->len));
        return r;
    }

    // The next reply, error replies included; a failure only when the connection broke.
    result<reply_ptr> read_any() {
        void* raw = nullptr;
        if (redisGetReply(ctx_, &raw) != REDIS_OK || !raw) {
            std::string msg = ctx_->errstr[0] ? ctx_->errstr : "no reply";
            reset();
            return result<reply_ptr>::failure("Redis: " + msg);
        }
        return reply_ptr(static_cast<redisReply*>(raw));
    }

    bool usable() const { return ctx_ && ctx_->err == 0; }

private:
    const redis_config& cfg_;
    std::string environment_;
    redisContext* ctx_ = nullptr;
};

class redis_cache final : public latest_cache {
public:
    // The writer's connection checks on every connect that the prefix is this environment's.
    explicit redis_cache(const config& cfg)
        : cfg_(cfg), rc_(*cfg.redis), writer_(rc_, cfg.environment), log_(module_logger(log_module::redis)) {
        for (int i = 0; i < rc_.pool_size; ++i) readers_.push_back(std::make_unique<redis_connection>(rc_));
        ttl_ms_ = std::make_unique<std::atomic<std::int64_t>[]>(cfg.feature_sets.size());
        for (std::size_t i = 0; i < cfg.feature_sets.size(); ++i) {
            const auto& set = cfg.feature_sets[i];
            columns_.push_back(latest_columns(set));
            key_prefixes_.push_back(redis_key(rc_.key_prefix, set.storage_name(), ""));
            ttl_ms_[i].store(set.ttl_ms);
        }
    }

    void set_ttl(std::uint32_t set_index, std::int64_t ttl_ms) override {
        if (set_index < cfg_.feature_sets.size()) ttl_ms_[set_index].store(ttl_ms, std::memory_order_relaxed);
    }

    // Writes each record's hash unless Redis holds a newer _event_time, atomically per key by
    // optimistic locking, in chunks of keys: WATCH them and read their _event_time (one round
    // trip), then MULTI, HSET + PEXPIRE of those whose stored time is older or absent, EXEC
    // (another). EXEC answers nil when another client changed a watched key in between; the
    // chunk, halved, is then read and written again. (A Lua script doing the same cost Redis half
    // as much again per key: each argument became a Lua string and then a Redis string again.)
    status apply(const std::vector<const record*>& records) override {
        if (records.empty()) return status::success();
        if (auto s = writer_.ensure(); !s) return fail(s.message());
        std::size_t limit = keys_per_transaction;
        int lost = 0;
        for (std::size_t from = 0; from < records.size();) {
            const std::size_t to = take_chunk(records, from, limit);
            auto committed = apply_chunk(records, from, to);
            if (!committed) return fail(committed.message());
            if (!committed.value()) {
                if (++lost == max_lost_in_a_row)
                    return fail("Redis: other clients kept changing the keys being written (" +
                                std::to_string(lost) + " transactions in a row lost)");
                limit = std::max<std::size_t>(1, (to - from) / 2);
                continue;
            }
            lost = 0;
            limit = keys_per_transaction;
            from = to;
        }
        healthy_.store(true);
        return status::success();
    }

    result<std::optional<latest_entry>> read_latest(std::uint32_t set_index, const std::string& key) override {
        using R = result<std::optional<latest_entry>>;
        const auto& set = cfg_.feature_sets[set_index];
        auto conn = acquire();
        auto r = conn->command({"HGETALL", redis_key(rc_.key_prefix, set.storage_name(), key)});
        release(std::move(conn));
        if (!r) {
            healthy_.store(false);
            return R::failure(r.message());
        }
        healthy_.store(true);
        return decode_hash(set_index, key, r.value().get());
    }

    std::vector<result<std::optional<latest_entry>>> read_latest_many(std::uint32_t set_index,
                                                                     const std::vector<std::string>& keys) override {
        using R = result<std::optional<latest_entry>>;
        std::vector<R> out;
        out.reserve(keys.size());
        if (keys.empty()) return out;
        const auto& set = cfg_.feature_sets[set_index];
        auto conn = acquire();
        if (auto s = conn->ensure(); !s) {
            release(std::move(conn));
            healthy_.store(false);
            return std::vector<R>(keys.size(), R::failure(s.message()));
        }
        // One pipeline: every HGETALL is sent, then every reply read.
        for (const auto& k : keys) conn->append({"HGETALL", redis_key(rc_.key_prefix, set.storage_name(), k)});
        for (const auto& k : keys) {
            auto r = conn->read_reply();
            if (!r) {
                if (!conn->usable()) {  // the connection broke: the rest have no answer either
                    while (out.size() < keys.size()) out.push_back(R::failure(r.message()));
                    break;
                }
                out.push_back(R::failure(r.message()));
                continue;
            }
            out.push_back(decode_hash(set_index, k, r.value().get()));
        }
        release(std::move(conn));
        healthy_.store(out.empty() || out.back().ok());
        return out;
    }

    bool healthy() const override { return healthy_.load(); }

    status ping() override {
        auto r = writer_.command({"PING"});
        if (!r) {
            healthy_.store(false);
            return r.as_status();  // permanent when the prefix is another environment's
        }
        healthy_.store(true);
        return status::success();
    }

private:
    result<std::optional<latest_entry>> decode_hash(std::uint32_t set_index, const std::string& key,
                                                    const redisReply* reply) const {
        return decode_latest_hash(columns_[set_index], key, reply);
    }

    // Fills chunk_keys_ with the Redis keys of records [from, to) and returns `to`: at most
    // `limit` of them, and none twice (a key's second record starts the next chunk,
    // so each write is checked against what the one before it left).
    std::size_t take_chunk(const std::vector<const record*>& records, std::size_t from, std::size_t limit) {
        chunk_keys_.clear();
        chunk_seen_.clear();
        std::size_t to = from;
        for (; to < records.size() && to - from < limit; ++to) {
            const record* r = records[to];
            std::string key = key_prefixes_[r->set_index] + r->key;
            if (!chunk_seen_.insert(key).second) break;
            chunk_keys_.push_back(std::move(key));
        }
        return to;
    }

    // One chunk (chunk_keys_ holds its keys): true when it is written (or nothing in it needed to
    // be), false when another client changed one of its keys in between and nothing was written.
    result<bool> apply_chunk(const std::vector<const record*>& records, std::size_t from, std::size_t to) {
        using R = result<bool>;
        const std::size_t n = to - from;
        // The connection broke while replies were read: the first error read, if any, says why.
        const auto broken = [](const status& first_error) {
            return R::failure(first_error.ok() ? "Redis: connection lost" : first_error.message());
        };
        // Round trip 1: WATCH, then each key's _event_time.
        out_.clear();
        append_resp_header(out_, '*', 1 + n);
        append_resp_bulk(out_, "WATCH");
        for (const auto& key : chunk_keys_) append_resp_bulk(out_, key);
        for (const auto& key : chunk_keys_) {
            append_resp_header(out_, '*', 3);
            append_resp_bulk(out_, "HGET");
            append_resp_bulk(out_, key);
            append_resp_bulk(out_, "_event_time");
        }
        writer_.append_formatted(out_);
        status first_error = expect_replies(1);
        write_.assign(n, 0);
        std::size_t writes = 0;
        for (std::size_t i = 0; i < n && writer_.usable(); ++i) {
            auto r = writer_.read_reply();
            if (!r) {
                if (first_error.ok()) first_error = status::failure(r.message());
            } else if (stored_is_older(r.value().get(), records[from + i]->event_time_ms)) {
                write_[i] = 1;
                ++writes;
            }
        }
        if (!writer_.usable()) return broken(first_error);
        if (!first_error.ok() || writes == 0) {
            auto u = writer_.command({"UNWATCH"});
            if (!first_error.ok()) return R::failure(first_error.message());
            if (!u) return R::failure(u.message());
            return true;
        }
        // Round trip 2: the writes in one transaction, which runs only if no watched key changed.
        out_.clear();
        append_resp_header(out_, '*', 1);
        append_resp_bulk(out_, "MULTI");
        std::size_t commands = 0;
        for (std::size_t i = 0; i < n; ++i) {
            if (write_[i]) commands += append_writes(*records[from + i], chunk_keys_[i]);
        }
        append_resp_header(out_, '*', 1);
        append_resp_bulk(out_, "EXEC");
        writer_.append_formatted(out_);
        // MULTI's OK and a QUEUED per command; an error among them makes EXEC fail as well.
        first_error = expect_replies(1 + commands);
        if (!writer_.usable()) return broken(first_error);
        auto reply = writer_.read_any();
        if (!reply) return R::failure(first_error.ok() ? reply.message() : first_error.message());
        const redisReply* exec = reply.value().get();
        if (exec->type == REDIS_REPLY_NIL) return false;  // a watched key changed
        if (exec->type == REDIS_REPLY_ERROR) return R::failure("Redis: " + std::string(exec->str, exec->len));
        if (!first_error.ok()) return R::failure(first_error.message());
        for (std::size_t i = 0; i < exec->elements; ++i) {
            const redisReply* e = exec->element[i];
            if (e->type == REDIS_REPLY_ERROR) return R::failure("Redis: " + std::string(e->str, e->len));
        }
        return true;
    }

    // Reads `count` replies; the first error among them, if any.
    status expect_replies(std::size_t count) {
        status first_error;
        for (std::size_t i = 0; i < count && writer_.usable(); ++i) {
            if (auto r = writer_.read_reply(); !r && first_error.ok()) first_error = status::failure(r.message());
        }
        return first_error;
    }

    // True when the stored _event_time (HGET's reply) is absent or older than event_time_ms. A
    // value that is not a number (not written by Sluice) counts as older.
    static bool stored_is_older(const redisReply* stored, std::int64_t event_time_ms) {
        if (stored->type != REDIS_REPLY_STRING) return true;
        std::int64_t t = 0;
        const auto [end, ec] = std::from_chars(stored->str, stored->str + stored->len, t);
        if (ec != std::errc() || end != stored->str + stored->len) return true;
        return t < event_time_ms;
    }

    // HSET of a record's hash (and PEXPIRE with the set's TTL) appended to out_; the number of
    // commands appended.
    std::size_t append_writes(const record& r, const std::string& key) {
        const auto& columns = columns_[r.set_index];
        const std::size_t fields = std::min(columns.size(), r.values.size());
        append_resp_header(out_, '*', 6 + 2 * fields);
        append_resp_bulk(out_, "HSET");
        append_resp_bulk(out_, key);
        append_resp_bulk(out_, "_event_time");
        append_resp_bulk(out_, decimal(r.event_time_ms));
        append_resp_bulk(out_, "_ingested_at");
        append_resp_bulk(out_, decimal(r.ingested_at_ms));
        for (std::size_t f = 0; f < fields; ++f) {
            append_resp_bulk(out_, columns[f].name);
            text_.clear();
            append_value_json_text(text_, columns[f].type, r.values[f]);
            append_resp_bulk(out_, text_);
        }
        const std::int64_t ttl = ttl_ms_[r.set_index].load(std::memory_order_relaxed);
        if (ttl <= 0) return 1;
        append_resp_header(out_, '*', 3);
        append_resp_bulk(out_, "PEXPIRE");
        append_resp_bulk(out_, key);
        append_resp_bulk(out_, decimal(ttl));
        return 2;
    }

    status fail(const std::string& message) {
        healthy_.store(false);
        return status::failure(message);
    }

    std::unique_ptr<redis_connection> acquire() {
        std::unique_lock lock(mutex_);
        cv_.wait(lock, [&] { return !readers_.empty(); });
        auto c = std::move(readers_.back());
        readers_.pop_back();
        return c;
    }
    void release(std::unique_ptr<redis_connection> c) {
        {
            std::lock_guard lock(mutex_);
            readers_.push_back(std::move(c));
        }
        cv_.notify_one();
    }

    const config& cfg_;
    const redis_config& rc_;
    redis_connection writer_;
    // The writer's buffers, reused from chunk to chunk: the chunk's keys, the commands in RESP, a
    // value's JSON text, which keys to write.
    std::vector<std::string> chunk_keys_;
    std::unordered_set<std::string> chunk_seen_;
    std::string out_, text_;
    std::vector<char> write_;
    std::vector<std::vector<latest_column>> columns_;  // per set: fields, then aggregations
    std::unique_ptr<std::atomic<std::int64_t>[]> ttl_ms_;  // per set; a reload may change it
    std::vector<std::string> key_prefixes_;             // per set: "<prefix>:<set>:"
    std::shared_ptr<spdlog::logger> log_;
    std::mutex mutex_;
    std::condition_variable cv_;
    std::vector<std::unique_ptr<redis_connection>> readers_;
    std::atomic<bool> healthy_{false};
};

}  // namespace

latest_cache_ptr make_redis_cache(const config& cfg) { return std::make_unique<redis_cache>(cfg); }

result<std::int64_t> delete_set_keys(const config& cfg, const std::string& storage_name) {
    using R = result<std::int64_t>;
    redis_connection conn(*cfg.redis, cfg.environment);  // another environment's prefix is refused
    const std::string pattern = redis_key(cfg.redis->key_prefix, storage_name, "*");
    std::string cursor = "0";
    std::int64_t deleted = 0;
    do {
        auto r = conn.command({"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"});
        if (!r) return R::failure(r.message(), r.kind());
        const redisReply* reply = r.value().get();
        if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2) return R::failure("Redis: unexpected SCAN reply");
        cursor.assign(reply->element[0]->str, reply->element[0]->len);
        std::vector<std::string> unlink = {"UNLINK"};
        const redisReply* keys = reply->element[1];
        for (std::size_t i = 0; i < keys->elements; ++i) unlink.emplace_back(keys->element[i]->str, keys->element[i]->len);
        if (unlink.size() > 1) {
            auto u = conn.command(unlink);
            if (!u) return R::failure(u.message(), u.kind());
            deleted += u.value()->integer;
        }
    } while (cursor != "0");
    return deleted;
}

}  // namespace sluice
