// What a guarded write of one key costs Redis, by method (issue 18, design change 2). Starts
// nothing: it talks to the redis-server at --host/--port, preloads --keys hashes of the "kv" set's
// shape (12 fields: _event_time, _ingested_at and 10 values of varying length, events.hpp), then
// writes --writes newer records over them with each method, --rounds times interleaved, and prints
// per run and as medians: Redis's CPU per key (utime + stime of /proc/<pid>/stat, the pid from
// INFO server), this client's CPU per key, wall time per key, and Redis's time per call of the
// command that does the writing (INFO commandstats). Redis must run on this machine.
//
//   sluice_bench_redis_write --port P [--host H] [--keys N] [--writes M] [--rounds R]
//                            [--batch B] [--chunk C] [--methods a,b,...]
//
// Methods (every one keeps the event-time guard atomic per key):
//   watch      WATCH + HGET _event_time, then MULTI, HSET + PEXPIRE of the older ones, EXEC, in
//              chunks of C keys (what redis_cache::apply does; a copy, so it can be compared
//              with whatever apply() does later)
//   fn-flat    FCALL of a Redis Function over C keys: field names and TTL once per call, then the
//              event time, ingested-at and values of each key as arguments of their own
//   fn-key     the same with each key's ingested-at and values packed in one MessagePack argument
//   fn-call    the same with all keys' times and values in one MessagePack argument per call
//   apply      make_redis_cache(cfg)->apply(), the daemon's own writer, in batches of B records
//
// BENCHMARKS.md, "Redis write per key", has the figures: the Functions cost Redis more per key.

#include <hiredis/hiredis.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "common/events.hpp"
#include "sluice/config/columns.hpp"
#include "sluice/core/value_codec.hpp"
#include "sluice/store/redis_cache.hpp"

namespace {

using namespace sluice;

// ---------------------------------------------------------------------------------------------
// A blocking hiredis connection with a few helpers.

struct reply_deleter {
    void operator()(redisReply* r) const { freeReplyObject(r); }
};
using reply_ptr = std::unique_ptr<redisReply, reply_deleter>;

[[noreturn]] void die(const std::string& what) {
    std::fprintf(stderr, "sluice_bench_redis_write: %s\n", what.c_str());
    std::exit(1);
}

class connection {
public:
    connection(const std::string& host, int port) {
        timeval tv{30, 0};
        ctx_ = redisConnectWithTimeout(host.c_str(), port, tv);
        if (!ctx_ || ctx_->err) die("cannot connect to Redis at " + host + ":" + std::to_string(port));
        redisSetTimeout(ctx_, tv);
    }
    ~connection() { redisFree(ctx_); }
    connection(const connection&) = delete;
    connection& operator=(const connection&) = delete;

    void send(const std::string& resp) { redisAppendFormattedCommand(ctx_, resp.data(), resp.size()); }
    reply_ptr reply() {
        void* raw = nullptr;
        if (redisGetReply(ctx_, &raw) != REDIS_OK || !raw) die(std::string("Redis: ") + ctx_->errstr);
        return reply_ptr(static_cast<redisReply*>(raw));
    }
    // The next reply; an error reply ends the program.
    reply_ptr ok_reply() {
        auto r = reply();
        if (r->type == REDIS_REPLY_ERROR) die("Redis: " + std::string(r->str, r->len));
        return r;
    }
    reply_ptr command(const std::vector<std::string>& args) {
        std::vector<const char*> argv;
        std::vector<size_t> lens;
        for (const auto& a : args) {
            argv.push_back(a.data());
            lens.push_back(a.size());
        }
        redisAppendCommandArgv(ctx_, static_cast<int>(args.size()), argv.data(), lens.data());
        return ok_reply();
    }

private:
    redisContext* ctx_ = nullptr;
};

// RESP, as the daemon writes it.
void header(std::string& out, char kind, std::size_t n) {
    out += kind;
    out += std::to_string(n);
    out += "\r\n";
}
void bulk(std::string& out, std::string_view arg) {
    header(out, '$', arg.size());
    out.append(arg);
    out += "\r\n";
}
std::string decimal(std::int64_t v) { return std::to_string(v); }

// MessagePack: a string (str8/16/32 or fixstr) and an array header, big-endian lengths.
void mp_be(std::string& out, std::uint64_t v, int bytes) {
    for (int i = bytes - 1; i >= 0; --i) out += static_cast<char>((v >> (8 * i)) & 0xff);
}
void mp_str(std::string& out, std::string_view s) {
    const std::size_t n = s.size();
    if (n < 32)
        out += static_cast<char>(0xa0 | n);
    else if (n < 256)
        out += '\xd9', mp_be(out, n, 1);
    else if (n < 65536)
        out += '\xda', mp_be(out, n, 2);
    else
        out += '\xdb', mp_be(out, n, 4);
    out.append(s);
}
void mp_array(std::string& out, std::size_t n) {
    if (n < 16)
        out += static_cast<char>(0x90 | n);
    else if (n < 65536)
        out += '\xdc', mp_be(out, n, 2);
    else
        out += '\xdd', mp_be(out, n, 4);
}

// ---------------------------------------------------------------------------------------------
// The Redis Function library of the fn-* methods. Each function takes the chunk's keys as KEYS and
// ARGV = ttl_ms ("0": none), field count F, F field names, then the records (layout by function).
// A key is written (HSET of every field, then PEXPIRE) only when its stored _event_time is absent
// or older: an equal or newer one stays. Returns the number of keys written.

const char* const bench_library = R"lua(#!lua name=sluice_bench
-- True when the stored _event_time (false: none) is older than t, the new time as decimal text.
-- Numbers compare as doubles, exact below 2^53; a stored text that is not a decimal integer counts
-- as older.
local function older(stored, t)
  if not stored then return true end
  local s, n = tonumber(stored), tonumber(t)
  if s == nil or s < n then return true end
  if not string.find(stored, '^%-?%d+$') then return true end
  if s > n or (s > -9007199254740992 and s < 9007199254740992) then return false end
  local neg = string.sub(t, 1, 1) == '-'
  local a = string.gsub(stored, '^%-?0*', '')
  local b = string.gsub(t, '^%-?0*', '')
  if #a ~= #b then return (#a < #b) ~= neg end
  if a == b then return false end
  return (a < b) ~= neg
end

-- redis.call, taken when a function runs (the library's loader has none).
local call

local function fields(args)
  local nf = tonumber(args[2])
  local hset = {'_event_time', false, '_ingested_at', false}
  for f = 1, nf do hset[3 + 2 * f] = args[2 + f]; hset[4 + 2 * f] = false end
  return nf, hset
end

local function write(key, t, hset, ttl)
  hset[2] = t
  call('HSET', key, unpack(hset))
  if ttl ~= '0' then call('PEXPIRE', key, ttl) end
end

-- Per key: event time, ingested-at, F values.
redis.register_function('sluice_flat', function(keys, args)
  call = redis.call
  local ttl = args[1]
  local nf, hset = fields(args)
  local o = 2 + nf
  local written = 0
  for i = 1, #keys do
    local t = args[o + 1]
    if older(call('HGET', keys[i], '_event_time'), t) then
      hset[4] = args[o + 2]
      for f = 1, nf do hset[4 + 2 * f] = args[o + 2 + f] end
      write(keys[i], t, hset, ttl)
      written = written + 1
    end
    o = o + 2 + nf
  end
  return written
end)

-- Per key: event time, MessagePack array of ingested-at and F values.
redis.register_function('sluice_key', function(keys, args)
  call = redis.call
  local ttl = args[1]
  local nf, hset = fields(args)
  local o = 2 + nf
  local written = 0
  for i = 1, #keys do
    local t = args[o + 1]
    if older(call('HGET', keys[i], '_event_time'), t) then
      local v = cmsgpack.unpack(args[o + 2])
      hset[4] = v[1]
      for f = 1, nf do hset[4 + 2 * f] = v[1 + f] end
      write(keys[i], t, hset, ttl)
      written = written + 1
    end
    o = o + 2
  end
  return written
end)

-- One MessagePack array: per key event time, ingested-at, F values.
redis.register_function('sluice_call', function(keys, args)
  call = redis.call
  local ttl = args[1]
  local nf, hset = fields(args)
  local v = cmsgpack.unpack(args[3 + nf])
  local o = 0
  local written = 0
  for i = 1, #keys do
    local t = v[o + 1]
    if older(call('HGET', keys[i], '_event_time'), t) then
      hset[4] = v[o + 2]
      for f = 1, nf do hset[4 + 2 * f] = v[o + 2 + f] end
      write(keys[i], t, hset, ttl)
      written = written + 1
    end
    o = o + 2 + nf
  end
  return written
end)
)lua";

// ---------------------------------------------------------------------------------------------
// The workload.

struct options {
    std::string host = "127.0.0.1";
    int port = 0;
    std::size_t keys = 100000, writes = 200000, rounds = 3, batch = 5000, chunk = 128;
    std::vector<std::string> methods = {"watch", "fn-flat", "fn-key", "fn-call", "apply"};
};

feature_set_config kv_set() {
    feature_set_config set;
    set.name = "kv";
    set.topic = "bench-events";
    set.key_field = "id";
    set.event_time_field = "ts";
    const std::pair<const char*, field_type> fields[] = {{"c0", field_type::int64},   {"c1", field_type::int64},
                                                         {"c2", field_type::int64},   {"d0", field_type::float64},
                                                         {"d1", field_type::float64}, {"d2", field_type::float64},
                                                         {"s0", field_type::string},  {"s1", field_type::string},
                                                         {"s2", field_type::string},  {"s3", field_type::string}};
    for (const auto& [name, type] : fields) {
        field_config f;
        f.name = name;
        f.type = type;
        set.fields.push_back(f);
    }
    set.ttl_ms = 24LL * 3600 * 1000;
    return set;
}

// A record of the kv set with the values events.hpp's kv_event would carry.
record kv_record(std::size_t key_index, bench::mix64& rnd) {
    record r;
    r.key = bench::key_of(key_index);
    const auto n = [&rnd](std::uint64_t mod) { return rnd.next() % mod; };
    r.values.emplace_back(static_cast<std::int64_t>(key_index));
    r.values.emplace_back(static_cast<std::int64_t>(n(10000000)));
    r.values.emplace_back(static_cast<std::int64_t>(n(10000000)));
    for (int d = 0; d < 3; ++d) r.values.emplace_back(static_cast<double>(n(100000000)) / 1e4);
    static constexpr char alphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    for (int s = 0; s < 4; ++s) {
        std::string text;
        for (int c = 0; c < 20; ++c) text += alphabet[n(62)];
        r.values.emplace_back(std::move(text));
    }
    return r;
}

// What every method needs: the set, its columns, the Redis keys, the records' values as JSON text.
struct workload {
    feature_set_config set = kv_set();
    std::vector<latest_column> columns = latest_columns(set);
    std::string prefix = redis_key("sluice", "kv", "");
    std::vector<record> records;  // --writes of them, over the --keys keys in turn
};

// ---------------------------------------------------------------------------------------------
// The methods. Each writes records [0, n) with their current event times.

class method {
public:
    virtual ~method() = default;
    virtual void write(const workload& w) = 0;
};

// The JSON text of record r's field f.
void json_text(std::string& out, const workload& w, const record& r, std::size_t f) {
    out.clear();
    append_value_json_text(out, w.columns[f].type, r.values[f]);
}

class watch_multi final : public method {
public:
    watch_multi(connection& c, std::size_t chunk) : c_(c), chunk_(chunk) {}
    void write(const workload& w) override {
        for (std::size_t from = 0; from < w.records.size();) {
            const std::size_t to = std::min(w.records.size(), from + chunk_);
            if (chunk(w, from, to)) from = to;
        }
    }

private:
    bool chunk(const workload& w, std::size_t from, std::size_t to) {
        const std::size_t n = to - from;
        keys_.clear();
        for (std::size_t i = from; i < to; ++i) keys_.push_back(w.prefix + w.records[i].key);
        out_.clear();
        header(out_, '*', 1 + n);
        bulk(out_, "WATCH");
        for (const auto& k : keys_) bulk(out_, k);
        for (const auto& k : keys_) {
            header(out_, '*', 3);
            bulk(out_, "HGET");
            bulk(out_, k);
            bulk(out_, "_event_time");
        }
        c_.send(out_);
        c_.ok_reply();
        std::vector<char> write(n, 0);
        std::size_t writes = 0;
        for (std::size_t i = 0; i < n; ++i) {
            auto r = c_.ok_reply();
            const std::int64_t t = w.records[from + i].event_time_ms;
            if (r->type != REDIS_REPLY_STRING || std::strtoll(r->str, nullptr, 10) < t) write[i] = 1, ++writes;
        }
        if (writes == 0) {
            c_.command({"UNWATCH"});
            return true;
        }
        out_.clear();
        header(out_, '*', 1);
        bulk(out_, "MULTI");
        std::size_t commands = 0;
        for (std::size_t i = 0; i < n; ++i) {
            if (!write[i]) continue;
            const record& r = w.records[from + i];
            header(out_, '*', 6 + 2 * w.columns.size());
            bulk(out_, "HSET");
            bulk(out_, keys_[i]);
            bulk(out_, "_event_time");
            bulk(out_, decimal(r.event_time_ms));
            bulk(out_, "_ingested_at");
            bulk(out_, decimal(r.ingested_at_ms));
            for (std::size_t f = 0; f < w.columns.size(); ++f) {
                bulk(out_, w.columns[f].name);
                json_text(text_, w, r, f);
                bulk(out_, text_);
            }
            header(out_, '*', 3);
            bulk(out_, "PEXPIRE");
            bulk(out_, keys_[i]);
            bulk(out_, decimal(w.set.ttl_ms));
            commands += 2;
        }
        header(out_, '*', 1);
        bulk(out_, "EXEC");
        c_.send(out_);
        for (std::size_t i = 0; i < 1 + commands; ++i) c_.ok_reply();
        return c_.ok_reply()->type != REDIS_REPLY_NIL;
    }

    connection& c_;
    std::size_t chunk_;
    std::vector<std::string> keys_;
    std::string out_, text_;
};

// FCALL of one of bench_library's functions, the chunks of a batch pipelined in one round trip.
class function_call final : public method {
public:
    enum class layout { flat, per_key, per_call };
    function_call(connection& c, std::size_t chunk, std::size_t batch, layout l)
        : c_(c), chunk_(chunk), batch_(batch), layout_(l) {}
    void write(const workload& w) override {
        for (std::size_t b = 0; b < w.records.size(); b += batch_) {
            const std::size_t end = std::min(w.records.size(), b + batch_);
            out_.clear();
            std::size_t calls = 0;
            for (std::size_t from = b; from < end; from += chunk_, ++calls)
                append_call(w, from, std::min(end, from + chunk_));
            c_.send(out_);
            for (std::size_t i = 0; i < calls; ++i) c_.ok_reply();
        }
    }

private:
    void append_call(const workload& w, std::size_t from, std::size_t to) {
        const std::size_t n = to - from, nf = w.columns.size();
        const std::size_t per_key = layout_ == layout::flat ? 2 + nf : layout_ == layout::per_key ? 2 : 0;
        header(out_, '*', 3 + n + 2 + nf + n * per_key + (layout_ == layout::per_call ? 1 : 0));
        bulk(out_, "FCALL");
        bulk(out_, layout_ == layout::flat ? "sluice_flat" : layout_ == layout::per_key ? "sluice_key" : "sluice_call");
        bulk(out_, decimal(static_cast<std::int64_t>(n)));
        for (std::size_t i = from; i < to; ++i) {
            key_.assign(w.prefix).append(w.records[i].key);
            bulk(out_, key_);
        }
        bulk(out_, decimal(w.set.ttl_ms));
        bulk(out_, decimal(static_cast<std::int64_t>(nf)));
        for (const auto& c : w.columns) bulk(out_, c.name);
        if (layout_ == layout::per_call) {
            packed_.clear();
            mp_array(packed_, n * (2 + nf));
        }
        for (std::size_t i = from; i < to; ++i) {
            const record& r = w.records[i];
            switch (layout_) {
                case layout::flat:
                    bulk(out_, decimal(r.event_time_ms));
                    bulk(out_, decimal(r.ingested_at_ms));
                    for (std::size_t f = 0; f < nf; ++f) {
                        json_text(text_, w, r, f);
                        bulk(out_, text_);
                    }
                    break;
                case layout::per_key:
                    bulk(out_, decimal(r.event_time_ms));
                    packed_.clear();
                    mp_array(packed_, 1 + nf);
                    mp_str(packed_, decimal(r.ingested_at_ms));
                    for (std::size_t f = 0; f < nf; ++f) {
                        json_text(text_, w, r, f);
                        mp_str(packed_, text_);
                    }
                    bulk(out_, packed_);
                    break;
                case layout::per_call:
                    mp_str(packed_, decimal(r.event_time_ms));
                    mp_str(packed_, decimal(r.ingested_at_ms));
                    for (std::size_t f = 0; f < nf; ++f) {
                        json_text(text_, w, r, f);
                        mp_str(packed_, text_);
                    }
                    break;
            }
        }
        if (layout_ == layout::per_call) bulk(out_, packed_);
    }

    connection& c_;
    std::size_t chunk_, batch_;
    layout layout_;
    std::string out_, text_, key_, packed_;
};

// The daemon's own writer.
class cache_apply final : public method {
public:
    cache_apply(const options& o, const workload& w) : batch_(o.batch) {
        cfg_.feature_sets.push_back(w.set);
        redis_config rc;
        rc.host = o.host;
        rc.port = o.port;
        rc.pool_size = 1;
        rc.timeout_ms = 30000;
        cfg_.redis = rc;
        cache_ = make_redis_cache(cfg_);
    }
    void write(const workload& w) override {
        std::vector<const record*> batch;
        for (std::size_t b = 0; b < w.records.size(); b += batch_) {
            batch.clear();
            for (std::size_t i = b; i < std::min(w.records.size(), b + batch_); ++i) batch.push_back(&w.records[i]);
            if (auto s = cache_->apply(batch); !s) die("apply: " + s.message());
        }
    }

private:
    std::size_t batch_;
    config cfg_;
    latest_cache_ptr cache_;
};

// ---------------------------------------------------------------------------------------------
// Measuring.

double redis_cpu_seconds(long pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const auto close = stat.rfind(')');
    if (close == std::string::npos)
        die("cannot read /proc/" + std::to_string(pid) + "/stat (is Redis on this machine?)");
    std::istringstream rest(stat.substr(close + 2));
    std::string field;
    unsigned long long utime = 0, stime = 0;
    for (int i = 3; i <= 15 && rest >> field; ++i) {
        if (i == 14) utime = std::stoull(field);
        if (i == 15) stime = std::stoull(field);
    }
    return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double own_cpu_seconds() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    const auto s = [](const timeval& t) {
        return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
    };
    return s(u.ru_utime) + s(u.ru_stime);
}

// "field:value" of an INFO section's reply.
std::string info_field(const std::string& info, const std::string& line_start, const std::string& field) {
    const auto at = info.find(line_start);
    if (at == std::string::npos) return {};
    const auto end = info.find("\r\n", at);
    const std::string line = info.substr(at, end - at);
    const auto f = line.find(field + "=");
    if (f == std::string::npos) {
        const auto colon = line.find(':');
        return colon == std::string::npos ? std::string{} : line.substr(colon + 1);
    }
    const auto v = f + field.size() + 1;
    return line.substr(v, line.find(',', v) - v);
}

struct figures {
    double redis_us = 0, client_us = 0, wall_us = 0, call_us = 0, keys_per_call = 0;
};

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v[v.size() / 2];
}

options parse(int argc, char** argv) {
    options o;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        const auto next = [&]() -> std::string {
            if (i + 1 >= argc) die(a + " needs a value");
            return argv[++i];
        };
        if (a == "--host")
            o.host = next();
        else if (a == "--port")
            o.port = std::stoi(next());
        else if (a == "--keys")
            o.keys = std::stoul(next());
        else if (a == "--writes")
            o.writes = std::stoul(next());
        else if (a == "--rounds")
            o.rounds = std::stoul(next());
        else if (a == "--batch")
            o.batch = std::stoul(next());
        else if (a == "--chunk")
            o.chunk = std::stoul(next());
        else if (a == "--methods") {
            o.methods.clear();
            std::stringstream in(next());
            for (std::string m; std::getline(in, m, ',');) o.methods.push_back(m);
        } else
            die("unknown argument " + a);
    }
    if (o.port <= 0) die("--port is required");
    if (o.keys == 0 || o.writes == 0 || o.batch == 0 || o.chunk == 0)
        die("--keys, --writes, --batch and --chunk must be > 0");
    return o;
}

}  // namespace

int main(int argc, char** argv) {
    const options o = parse(argc, argv);
    connection c(o.host, o.port);
    const long pid = std::stol(info_field(c.command({"INFO", "server"})->str, "process_id:", ""));
    c.command({"FUNCTION", "LOAD", "REPLACE", bench_library});

    workload w;
    bench::mix64 rnd{42};
    std::int64_t now = 1'700'000'000'000;
    // Preload: every key once, as the daemon would have written it.
    {
        std::string out, text;
        for (std::size_t i = 0; i < o.keys; i += 1000) {
            out.clear();
            const std::size_t end = std::min(o.keys, i + 1000);
            for (std::size_t k = i; k < end; ++k) {
                record r = kv_record(k, rnd);
                header(out, '*', 6 + 2 * w.columns.size());
                bulk(out, "HSET");
                bulk(out, w.prefix + r.key);
                bulk(out, "_event_time");
                bulk(out, decimal(now));
                bulk(out, "_ingested_at");
                bulk(out, decimal(now));
                for (std::size_t f = 0; f < w.columns.size(); ++f) {
                    bulk(out, w.columns[f].name);
                    json_text(text, w, r, f);
                    bulk(out, text);
                }
                header(out, '*', 3);
                bulk(out, "PEXPIRE");
                bulk(out, w.prefix + r.key);
                bulk(out, decimal(w.set.ttl_ms));
            }
            c.send(out);
            for (std::size_t k = 0; k < 2 * (end - i); ++k) c.ok_reply();
        }
    }
    for (std::size_t i = 0; i < o.writes; ++i) w.records.push_back(kv_record(i % o.keys, rnd));

    std::map<std::string, std::unique_ptr<method>> methods;
    for (const auto& m : o.methods) {
        if (m == "watch")
            methods[m] = std::make_unique<watch_multi>(c, o.chunk);
        else if (m == "fn-flat")
            methods[m] = std::make_unique<function_call>(c, o.chunk, o.batch, function_call::layout::flat);
        else if (m == "fn-key")
            methods[m] = std::make_unique<function_call>(c, o.chunk, o.batch, function_call::layout::per_key);
        else if (m == "fn-call")
            methods[m] = std::make_unique<function_call>(c, o.chunk, o.batch, function_call::layout::per_call);
        else if (m == "apply")
            methods[m] = std::make_unique<cache_apply>(o, w);
        else
            die("unknown method " + m + " (watch, fn-flat, fn-key, fn-call, apply)");
    }

    std::printf("Redis pid %ld, %zu keys preloaded, %zu guarded writes per run, chunk %zu keys, batch %zu\n", pid,
                o.keys, o.writes, o.chunk, o.batch);
    std::printf("%-8s %5s %14s %15s %13s %14s %10s\n", "method", "round", "redis us/key", "client us/key",
                "wall us/key", "us per call", "keys/call");
    std::map<std::string, std::vector<figures>> runs;
    for (std::size_t round = 0; round < o.rounds; ++round) {
        for (const auto& name : o.methods) {
            // Newer event times than any written before, so every write passes the guard.
            for (auto& r : w.records) r.event_time_ms = r.ingested_at_ms = ++now;
            c.command({"CONFIG", "RESETSTAT"});
            const double redis0 = redis_cpu_seconds(pid), own0 = own_cpu_seconds();
            const auto t0 = std::chrono::steady_clock::now();
            methods[name]->write(w);
            const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            const double redis1 = redis_cpu_seconds(pid), own1 = own_cpu_seconds();
            const std::string stats = c.command({"INFO", "commandstats"})->str;
            figures f;
            const double n = static_cast<double>(o.writes);
            f.redis_us = (redis1 - redis0) * 1e6 / n;
            f.client_us = (own1 - own0) * 1e6 / n;
            f.wall_us = wall * 1e6 / n;
            for (const char* cmd : {"fcall", "exec"}) {
                const std::string calls = info_field(stats, std::string("cmdstat_") + cmd + ":", "calls");
                if (calls.empty()) continue;
                f.call_us = std::stod(info_field(stats, std::string("cmdstat_") + cmd + ":", "usec_per_call"));
                f.keys_per_call = n / std::stod(calls);
            }
            runs[name].push_back(f);
            std::printf("%-8s %5zu %14.2f %15.2f %13.2f %14.1f %10.1f\n", name.c_str(), round + 1, f.redis_us,
                        f.client_us, f.wall_us, f.call_us, f.keys_per_call);
            std::fflush(stdout);
        }
    }
    std::printf("\nmedians of %zu rounds\n%-8s %14s %15s %13s %14s\n", o.rounds, "method", "redis us/key",
                "client us/key", "wall us/key", "us per call");
    for (const auto& name : o.methods) {
        std::vector<double> r, cl, wa, ca;
        for (const auto& f : runs[name])
            r.push_back(f.redis_us), cl.push_back(f.client_us), wa.push_back(f.wall_us), ca.push_back(f.call_us);
        std::printf("%-8s %14.2f %15.2f %13.2f %14.1f\n", name.c_str(), median(r), median(cl), median(wa), median(ca));
    }
    return 0;
}
