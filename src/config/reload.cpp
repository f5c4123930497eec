// Live reload's diff and classification (see sluice/config/reload.hpp).

#include "sluice/config/reload.hpp"

#include <algorithm>
#include <array>
#include <map>
#include <string_view>

#include "sluice/config/definition.hpp"

namespace sluice {

namespace {

using ojson = nlohmann::ordered_json;

constexpr const char* redacted = "<redacted>";

// A Kafka property whose value is a credential (librdkafka: sasl.password, ssl.key.password,
// sasl.oauthbearer.client.secret, ssl.keystore.password, ssl.key.pem ...).
bool secret_property(std::string_view name) {
    for (std::string_view word : {"password", "secret", "key.pem", "token"})
        if (name.find(word) != std::string_view::npos) return true;
    return false;
}

// "host=h password=x dbname=d" -> "host=h password=<redacted> dbname=d"; a URI's
// "postgresql://u:x@h/d" -> "postgresql://u:<redacted>@h/d".
std::string redact_dsn(const std::string& dsn) {
    std::string out = dsn;
    if (const auto scheme = out.find("://"); scheme != std::string::npos) {
        const auto at = out.find('@', scheme + 3);
        const auto colon = out.find(':', scheme + 3);
        if (at != std::string::npos && colon != std::string::npos && colon < at)
            out.replace(colon + 1, at - colon - 1, redacted);
    }
    for (std::size_t pos = 0; (pos = out.find("password", pos)) != std::string::npos;) {
        std::size_t eq = pos + 8;
        while (eq < out.size() && out[eq] == ' ') ++eq;
        if (eq >= out.size() || out[eq] != '=') {
            pos = eq;
            continue;
        }
        std::size_t start = eq + 1;
        while (start < out.size() && out[start] == ' ') ++start;
        std::size_t end = start;
        if (end < out.size() && out[end] == '\'') {
            ++end;
            while (end < out.size() && out[end] != '\'') end += out[end] == '\\' ? 2 : 1;
            end = std::min(out.size(), end + 1);
        } else {
            while (end < out.size() && out[end] != ' ') ++end;
        }
        out.replace(start, end - start, redacted);
        pos = start + std::string_view(redacted).size();
    }
    return out;
}

// Paths (of config_to_json's document) a reload applies live, and how.
struct live_rule {
    std::string_view prefix;
    std::string_view how;
};
constexpr std::array live_paths{
    live_rule{"log.level", "the loggers' level, at once"},
    live_rule{"log.format", "the log lines' format, at once"},
    live_rule{"http.auth.api_keys", "requests from now on; open connections stay open"},
    live_rule{"http.rate_limit", "requests from now on (every client's bucket starts full)"},
    live_rule{"http.body_limit_bytes", "requests from now on"},
    live_rule{"http.header_limit_bytes", "requests from now on"},
    live_rule{"http.read_timeout_ms", "requests from now on"},
    live_rule{"http.idle_timeout_ms", "idle waits from now on"},
    live_rule{"http.write_timeout_ms", "answers from now on"},
    live_rule{"http.max_connections", "connections from now on"},
    live_rule{"http.max_lookup_keys", "requests from now on"},
    live_rule{"http.ingest_timeout_ms", "pushes from now on"},
    live_rule{"training", "exports started from now on"},
    live_rule{"feature_services", "requests from now on"},
    live_rule{"push_sources", "pushes from now on"},
};

const live_rule* live_rule_for(const std::string& path) {
    for (const auto& r : live_paths)
        if (path.compare(0, r.prefix.size(), r.prefix) == 0 &&
            (path.size() == r.prefix.size() || path[r.prefix.size()] == '.' || path[r.prefix.size()] == '['))
            return &r;
    return nullptr;
}

std::string short_text(const ojson& v) {
    if (v.is_null()) return "none";
    std::string s = v.dump();
    if (s.size() > 60) return "changed";
    return s;
}

// Leaves of two documents that differ, as "a.b.c" (arrays as a whole: "a.list").
void diff_leaves(const ojson& a, const ojson& b, const std::string& path, std::vector<std::pair<std::string, std::string>>& out) {
    if (a.is_object() && b.is_object()) {
        for (auto it = a.begin(); it != a.end(); ++it) {
            const std::string p = path.empty() ? it.key() : path + "." + it.key();
            if (!b.contains(it.key()))
                out.emplace_back(p, "removed");
            else
                diff_leaves(it.value(), b.at(it.key()), p, out);
        }
        for (auto it = b.begin(); it != b.end(); ++it)
            if (!a.contains(it.key())) out.emplace_back(path.empty() ? it.key() : path + "." + it.key(), "added");
        return;
    }
    if (a == b) return;
    const bool secret = a == ojson(redacted) || b == ojson(redacted) || path.find("api_keys") != std::string::npos;
    out.emplace_back(path, secret ? std::string("changed") : short_text(a) + " -> " + short_text(b));
}

// Copies every live member of the new config into the running one.
void apply_live_sections(config& into, const config& from) {
    into.log = from.log;
    http_config& h = into.http;
    const http_config& n = from.http;
    h.api_keys = n.api_keys;
    h.rate_limit = n.rate_limit;
    h.body_limit_bytes = n.body_limit_bytes;
    h.header_limit_bytes = n.header_limit_bytes;
    h.read_timeout_ms = n.read_timeout_ms;
    h.idle_timeout_ms = n.idle_timeout_ms;
    h.write_timeout_ms = n.write_timeout_ms;
    h.max_connections = n.max_connections;
    h.max_lookup_keys = n.max_lookup_keys;
    h.ingest_timeout_ms = n.ingest_timeout_ms;
    into.training = from.training;
    into.feature_services = from.feature_services;
    into.push_sources = from.push_sources;
}

// "added ops; removed ci; scopes or digest of reader changed": names only, never digests.
std::string key_changes(const std::vector<api_key_config>& was, const std::vector<api_key_config>& now) {
    const auto named = [](const std::vector<api_key_config>& keys, const std::string& name) -> const api_key_config* {
        for (const auto& k : keys)
            if (k.name == name) return &k;
        return nullptr;
    };
    std::string added, removed, changed;
    const auto add = [](std::string& list, const std::string& name) { list += (list.empty() ? "" : ", ") + name; };
    for (const auto& k : now) {
        const api_key_config* old = named(was, k.name);
        if (old == nullptr)
            add(added, k.name);
        else if (!(*old == k))
            add(changed, k.name);
    }
    for (const auto& k : was)
        if (named(now, k.name) == nullptr) add(removed, k.name);
    std::string out;
    if (!added.empty()) out += "added " + added;
    if (!removed.empty()) out += std::string(out.empty() ? "" : "; ") + "removed " + removed;
    if (!changed.empty()) out += std::string(out.empty() ? "" : "; ") + "scopes or digest of " + changed + " changed";
    return out.empty() ? "reordered" : out;
}

std::string set_path(const feature_set_config& s) { return "feature_sets[" + s.display_name() + "]"; }

int find_version(const config& cfg, const feature_set_config& s) {
    for (std::size_t i = 0; i < cfg.feature_sets.size(); ++i)
        if (cfg.feature_sets[i].name == s.name && cfg.feature_sets[i].version == s.version) return static_cast<int>(i);
    return -1;
}

// One feature set in both configs: the registry's classification, then live or restart per subject.
void plan_set(const feature_set_config& was, const feature_set_config& now, feature_set_config& effective,
              std::vector<config_change>& out) {
    const std::string base = set_path(was);
    const bool same_fields = was.fields == now.fields;
    for (const auto& c : classify_changes(canonical_spec(was), canonical_spec(now))) {
        config_change ch{base + "." + c.subject, c.change, change_class::restart, c.why};
        if (c.breaking) {
            ch.applied = change_class::breaking;
            ch.note = c.why + " (a breaking change needs a new version: raise \"version\")";
        } else if (c.subject == "ttl") {
            ch.applied = change_class::live;
            effective.ttl_ms = now.ttl_ms;
            ch.note = "reads and Redis writes from now on";
        } else if ((c.subject == "transforms" || c.subject == "dedup") && same_fields) {
            ch.applied = change_class::live;
            if (c.subject == "transforms")
                effective.transforms = now.transforms;
            else
                effective.dedup = now.dedup;
            ch.note = "events preprocessed from now on";
        } else if (c.subject == "expectations" && same_fields) {
            ch.applied = change_class::live;
            effective.expectations = now.expectations;
            ch.note = "quality windows closed from now on";
        } else {
            ch.note = "needs a restart" + std::string(c.subject == "transforms" || c.subject == "dedup"
                                                          ? " (the set's fields change too)"
                                                          : "");
        }
        out.push_back(std::move(ch));
    }
    if (was.serving != now.serving)
        out.push_back({base + ".serving", std::string(was.serving ? "true" : "false") + " -> " + (now.serving ? "true" : "false"),
                       change_class::restart, "needs a restart"});
    if (was.backfill_from_ms != now.backfill_from_ms)
        out.push_back({base + ".backfill_from", "changed", change_class::restart,
                       "needs a restart (only a consumer group without offsets reads it)"});
}

}  // namespace

const char* to_string(change_class c) {
    switch (c) {
        case change_class::live: return "live";
        case change_class::restart: return "needs restart";
        case change_class::breaking: return "breaking";
    }
    return "live";
}

bool reload_plan::breaking() const {
    return std::any_of(changes.begin(), changes.end(), [](const config_change& c) { return c.applied == change_class::breaking; });
}

bool reload_plan::any_live() const {
    return std::any_of(changes.begin(), changes.end(), [](const config_change& c) { return c.applied == change_class::live; });
}

std::vector<std::string> reload_plan::pending_restart() const {
    std::vector<std::string> out;
    for (const auto& c : changes)
        if (c.applied == change_class::restart) out.push_back(c.path);
    return out;
}

reload_plan plan_reload(const config& running, const config& next) {
    reload_plan plan;
    plan.effective = running;
    plan.effective.origin = next.origin;

    // Everything but the feature sets, leaf by leaf.
    ojson a = config_to_json(running);
    ojson b = config_to_json(next);
    a.erase("feature_sets");
    b.erase("feature_sets");
    std::vector<std::pair<std::string, std::string>> leaves;
    diff_leaves(a, b, "", leaves);
    for (auto& [path, change] : leaves) {
        config_change c{path, change, change_class::restart, "needs a restart"};
        if (path == "environment") {
            c.applied = change_class::breaking;
            c.note = "a daemon's environment owns its schema and Redis prefix and cannot change while it runs";
        } else if (const live_rule* r = live_rule_for(path)) {
            c.applied = change_class::live;
            c.note = std::string(r->how);
        }
        if (path == "http.auth.api_keys") c.change = key_changes(running.http.api_keys, next.http.api_keys);
        plan.changes.push_back(std::move(c));
    }
    apply_live_sections(plan.effective, next);

    // The feature sets, by name and version.
    for (const auto& now : next.feature_sets) {
        const int i = find_version(running, now);
        if (i < 0) {
            const bool new_name = std::none_of(running.feature_sets.begin(), running.feature_sets.end(),
                                               [&](const feature_set_config& s) { return s.name == now.name; });
            if (new_name && now.version == 1) {
                plan.changes.push_back({set_path(now), "added", change_class::live,
                                        "its tables are made now and its topic consumed in a consumer group of its own "
                                        "(" + next.kafka.group_id + "." + now.storage_name() +
                                            "), so no other set's consumer is rebalanced"});
                plan.effective.feature_sets.push_back(now);
            } else {
                plan.changes.push_back({set_path(now), "added", change_class::restart,
                                        "needs a restart: a new version of a set is built by a backfill started at start"});
            }
            continue;
        }
        plan_set(running.feature_sets[static_cast<std::size_t>(i)], now,
                 plan.effective.feature_sets[static_cast<std::size_t>(i)], plan.changes);
    }
    for (const auto& was : running.feature_sets)
        if (find_version(next, was) < 0)
            plan.changes.push_back({set_path(was), "removed", change_class::restart,
                                    "needs a restart: the set keeps being consumed and served until then"});
    return plan;
}

nlohmann::ordered_json config_to_json(const config& cfg) {
    ojson j;
    j["environment"] = cfg.environment;
    const auto& k = cfg.kafka;
    ojson props = ojson::object();
    for (const auto& [name, text] : k.properties) props[name] = secret_property(name) ? redacted : text;
    j["kafka"] = {{"brokers", k.brokers},
                  {"group_id", k.group_id},
                  {"consumer_threads", k.consumer_threads},
                  {"max_message_bytes", k.max_message_bytes},
                  {"properties", props},
                  {"dead_letter_topic", k.dead_letter_topic},
                  {"poll_timeout_ms", k.poll_timeout_ms},
                  {"embedded", {{"brokers", k.embedded.brokers}, {"partitions", k.embedded.partitions}}}};
    ojson sets = ojson::array();
    for (const auto& s : cfg.feature_sets) {
        ojson spec = ojson::parse(canonical_spec(s));
        spec["serving"] = s.serving;
        if (s.backfill_from_ms > 0) spec["backfill_from"] = s.backfill_from_ms;
        sets.push_back(std::move(spec));
    }
    j["feature_sets"] = std::move(sets);
    const auto& p = cfg.pipeline;
    j["pipeline"] = {{"preprocess_threads", p.preprocess_threads},
                     {"queue_capacity", p.queue_capacity},
                     {"batch_max_records", p.batch_max_records},
                     {"batch_linger_ms", p.batch_linger_ms},
                     {"batches_in_flight", p.batches_in_flight},
                     {"pause_watermark", p.pause_watermark},
                     {"resume_watermark", p.resume_watermark},
                     {"shutdown_timeout_ms", p.shutdown_timeout_ms}};
    if (cfg.postgres)
        j["postgres"] = {{"dsn", redact_dsn(cfg.postgres->dsn)},
                         {"pool_size", cfg.postgres->pool_size},
                         {"schema", cfg.postgres->schema},
                         {"parallel_latest", cfg.postgres->parallel_latest},
                         {"history_unique_index", cfg.postgres->history_unique_index}};
    else
        j["postgres"] = nullptr;
    if (cfg.redis)
        j["redis"] = {{"host", cfg.redis->host},
                      {"port", cfg.redis->port},
                      {"pool_size", cfg.redis->pool_size},
                      {"key_prefix", cfg.redis->key_prefix},
                      {"username", cfg.redis->username},
                      {"password", cfg.redis->password.empty() ? "" : redacted},
                      {"db", cfg.redis->db},
                      {"timeout_ms", cfg.redis->timeout_ms}};
    else
        j["redis"] = nullptr;
    const auto& h = cfg.http;
    ojson keys = ojson::array();
    for (const auto& key : h.api_keys) keys.push_back({{"name", key.name}, {"sha256", redacted}, {"scopes", key.scopes}});
    j["http"] = {{"listen", h.listen},
                 {"threads", h.threads},
                 {"body_limit_bytes", h.body_limit_bytes},
                 {"header_limit_bytes", h.header_limit_bytes},
                 {"read_timeout_ms", h.read_timeout_ms},
                 {"idle_timeout_ms", h.idle_timeout_ms},
                 {"write_timeout_ms", h.write_timeout_ms},
                 {"lookup_threads", h.lookup_threads},
                 {"max_connections", h.max_connections},
                 {"max_lookup_keys", h.max_lookup_keys},
                 {"ingest_timeout_ms", h.ingest_timeout_ms},
                 {"tls", {{"cert_file", h.tls.cert_file}, {"key_file", h.tls.key_file}}},
                 {"rate_limit", {{"requests_per_sec", h.rate_limit.requests_per_sec}, {"burst", h.rate_limit.burst}}},
                 {"auth", {{"api_keys", keys}}}};
    j["memory"] = {{"enabled", cfg.memory.enabled}, {"before_commit", cfg.memory.before_commit}};
    j["log"] = {{"level", cfg.log.level}, {"format", cfg.log.format}};
    j["generator"] = {{"enabled", cfg.generator.enabled},
                      {"events_per_sec", cfg.generator.events_per_sec},
                      {"keys", cfg.generator.keys}};
    ojson windows = ojson::array();
    for (auto w : cfg.quality.windows_ms) windows.push_back(format_duration(w));
    j["quality"] = {{"enabled", cfg.quality.enabled}, {"windows", windows}, {"keep_windows", cfg.quality.keep_windows}};
    j["activity"] = {{"retention_days", cfg.activity.retention_days},
                     {"buffer_rows", cfg.activity.buffer_rows},
                     {"auth_failures_per_minute", cfg.activity.auth_failures_per_minute}};
    const auto& t = cfg.training;
    j["training"] = {{"max_concurrent", t.max_concurrent},
                     {"body_limit_bytes", t.body_limit_bytes},
                     {"chunk_rows", t.chunk_rows},
                     {"statement_timeout_ms", t.statement_timeout_ms},
                     {"max_line_bytes", t.max_line_bytes}};
    ojson services = ojson::array();
    for (const auto& svc : cfg.feature_services)
        services.push_back({{"name", svc.name}, {"description", svc.description}, {"features", svc.features}});
    j["feature_services"] = std::move(services);
    ojson pushes = ojson::array();
    for (const auto& src : cfg.push_sources) pushes.push_back({{"name", src.name}, {"feature_sets", src.feature_sets}});
    j["push_sources"] = std::move(pushes);
    return j;
}

nlohmann::ordered_json reload_outcome::json() const {
    ojson j;
    j["outcome"] = outcome;
    j["reason"] = reason;
    j["config"] = {{"path", path}, {"sha256_before", sha256_before}, {"sha256_after", sha256_after}};
    ojson list = ojson::array();
    for (const auto& c : changes)
        list.push_back({{"path", c.path}, {"change", c.change}, {"applied", to_string(c.applied)}, {"note", c.note}});
    j["changes"] = std::move(list);
    ojson errs = ojson::array();
    for (const auto& e : errors) errs.push_back({{"path", e.path}, {"message", e.message}});
    j["errors"] = std::move(errs);
    return j;
}

}  // namespace sluice
