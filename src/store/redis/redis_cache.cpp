#include <hiredis/hiredis.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <condition_variable>
#include <mutex>

#include "sluice/config/columns.hpp"
#include "sluice/core/value_codec.hpp"
#include "sluice/store/redis_cache.hpp"

namespace sluice {

void append_resp_bulk(std::string& out, std::string_view arg) {
    char length[24];
    length[0] = '$';
    char* end = std::to_chars(length + 1, length + sizeof length - 2, arg.size()).ptr;
    *end++ = '\r';
    *end++ = '\n';
    out.append(length, end);
    out.append(arg);
    out += "\r\n";
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

// For each hash KEYS[k]: writes it only when the stored _event_time is older (a re-delivered
// event changes nothing), then sets the TTL. ARGV holds, per key in turn: event_time, ttl_ms,
// the number of field/value pairs, then the pairs. One call covers many keys: Redis runs one
// command and one script call per chunk instead of per key.
constexpr const char* upsert_script = R"lua(
local a = 1
for k = 1, #KEYS do
  local t = ARGV[a]
  local ttl = tonumber(ARGV[a + 1])
  local last = a + 2 + 2 * tonumber(ARGV[a + 2])
  local cur = redis.call('HGET', KEYS[k], '_event_time')
  if not cur or tonumber(cur) < tonumber(t) then
    redis.call('HSET', KEYS[k], '_event_time', t, unpack(ARGV, a + 3, last))
    if ttl > 0 then redis.call('PEXPIRE', KEYS[k], ttl) end
  end
  a = last + 1
end
return 0
)lua";

// Keys per script call: large enough to amortise the call, small enough to keep each reply quick
// and the script's argument list far below Lua's stack limit.
constexpr std::size_t keys_per_call = 64;

struct reply_deleter {
    void operator()(redisReply* r) const { freeReplyObject(r); }
};
using reply_ptr = std::unique_ptr<redisReply, reply_deleter>;

/// One hiredis context used by one thread at a time; replaced after any error (hiredis contexts
/// cannot be reused after one).
class redis_connection {
public:
    explicit redis_connection(const redis_config& cfg) : cfg_(cfg) {}
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
            if (auto r = command({"AUTH", cfg_.password}); !r) return status::failure(r.message());
        }
        if (cfg_.db != 0) {
            if (auto r = command({"SELECT", std::to_string(cfg_.db)}); !r) return status::failure(r.message());
        }
        return status::success();
    }

    result<reply_ptr> command(const std::vector<std::string>& args) {
        if (auto s = ensure(); !s) return result<reply_ptr>::failure(s.message());
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

    result<reply_ptr> read_reply() {
        void* raw = nullptr;
        if (redisGetReply(ctx_, &raw) != REDIS_OK || !raw) {
            std::string msg = ctx_->errstr[0] ? ctx_->errstr : "no reply";
            reset();
            return result<reply_ptr>::failure("Redis: " + msg);
        }
        reply_ptr r(static_cast<redisReply*>(raw));
        if (r->type == REDIS_REPLY_ERROR) return result<reply_ptr>::failure("Redis: " + std::string(r->str, r->len));
        return r;
    }

    bool usable() const { return ctx_ && ctx_->err == 0; }

private:
    const redis_config& cfg_;
    redisContext* ctx_ = nullptr;
};

class redis_cache final : public latest_cache {
public:
    explicit redis_cache(const config& cfg) : cfg_(cfg), rc_(*cfg.redis), writer_(rc_), log_(spdlog::get("store.redis")) {
        if (!log_) log_ = spdlog::default_logger();
        for (int i = 0; i < rc_.pool_size; ++i) readers_.push_back(std::make_unique<redis_connection>(rc_));
        for (const auto& set : cfg.feature_sets) {
            columns_.push_back(latest_columns(set));
            key_prefixes_.push_back(redis_key(rc_.key_prefix, set.name, ""));
        }
    }

    status apply(const std::vector<const record*>& records) override {
        if (records.empty()) return status::success();
        if (auto s = load_script(); !s) return fail(s.message());
        // Pipeline one script call per chunk of keys, then read every reply. Each call is written
        // in RESP here: EVALSHA sha numkeys key... then per key its event time, TTL, field count and
        // field/value pairs.
        std::string keys, argv, command, text;
        std::size_t calls = 0;
        for (std::size_t from = 0; from < records.size(); from += keys_per_call) {
            const std::size_t to = std::min(records.size(), from + keys_per_call);
            keys.clear();
            argv.clear();
            std::size_t args = 0;
            for (std::size_t i = from; i < to; ++i) {
                const record* r = records[i];
                const auto& set = cfg_.feature_sets[r->set_index];
                const auto& columns = columns_[r->set_index];
                const std::size_t fields = std::min(columns.size(), r->values.size());
                text.assign(key_prefixes_[r->set_index]);
                text.append(r->key);
                append_resp_bulk(keys, text);
                append_resp_bulk(argv, decimal(r->event_time_ms));
                append_resp_bulk(argv, decimal(set.ttl_ms));
                append_resp_bulk(argv, decimal(static_cast<std::int64_t>(fields + 1)));
                append_resp_bulk(argv, "_ingested_at");
                append_resp_bulk(argv, decimal(r->ingested_at_ms));
                for (std::size_t f = 0; f < fields; ++f) {
                    append_resp_bulk(argv, columns[f].name);
                    text.clear();
                    append_value_json_text(text, columns[f].type, r->values[f]);
                    append_resp_bulk(argv, text);
                }
                args += 5 + 2 * fields;
            }
            command.clear();
            command += '*';
            command += std::to_string(3 + (to - from) + args);
            command += "\r\n";
            append_resp_bulk(command, "EVALSHA");
            append_resp_bulk(command, sha_);
            append_resp_bulk(command, std::to_string(to - from));
            command += keys;
            command += argv;
            writer_.append_formatted(command);
            ++calls;
        }
        status first_error;
        for (std::size_t i = 0; i < calls; ++i) {
            auto r = writer_.read_reply();
            if (!r && first_error.ok()) first_error = status::failure(r.message());
            if (!writer_.usable()) break;
        }
        if (!first_error.ok()) {
            // NOSCRIPT after a Redis restart: load the script again next time.
            if (first_error.message().find("NOSCRIPT") != std::string::npos) sha_.clear();
            return fail(first_error.message());
        }
        healthy_.store(true);
        return status::success();
    }

    result<std::optional<latest_entry>> read_latest(std::uint32_t set_index, const std::string& key) override {
        using R = result<std::optional<latest_entry>>;
        const auto& set = cfg_.feature_sets[set_index];
        auto conn = acquire();
        auto r = conn->command({"HGETALL", redis_key(rc_.key_prefix, set.name, key)});
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
        for (const auto& k : keys) conn->append({"HGETALL", redis_key(rc_.key_prefix, set.name, k)});
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
        if (!r) return fail(r.message());
        healthy_.store(true);
        return status::success();
    }

private:
    result<std::optional<latest_entry>> decode_hash(std::uint32_t set_index, const std::string& key,
                                                    const redisReply* reply) const {
        return decode_latest_hash(columns_[set_index], key, reply);
    }

    status load_script() {
        if (!sha_.empty() && writer_.usable()) return status::success();
        auto r = writer_.command({"SCRIPT", "LOAD", upsert_script});
        if (!r) return status::failure(r.message());
        sha_.assign(r.value()->str, r.value()->len);
        return status::success();
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
    std::string sha_;
    std::vector<std::vector<latest_column>> columns_;  // per set: fields, then aggregations
    std::vector<std::string> key_prefixes_;             // per set: "<prefix>:<set>:"
    std::shared_ptr<spdlog::logger> log_;
    std::mutex mutex_;
    std::condition_variable cv_;
    std::vector<std::unique_ptr<redis_connection>> readers_;
    std::atomic<bool> healthy_{false};
};

}  // namespace

latest_cache_ptr make_redis_cache(const config& cfg) { return std::make_unique<redis_cache>(cfg); }

}  // namespace sluice
