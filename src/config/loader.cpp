// The config loader: JSON with // comments → ${ENV} substitution → typed, validated config.
//
// Every key is declared once in a key table (key_tables.cpp: name, one-line description,
// default, bounds and how to store it). The tables drive the reader, so an unknown key, a wrong
// type or a value out of range is found by one generic routine (key_spec.hpp) and reported with
// its JSON path (json_reader.hpp); feature sets get their whole-set checks in
// feature_set_reader.cpp. Every error is collected; nothing stops at the first. The loader runs
// once at start-up on the main thread (and for `--check`); it never throws to its caller.

#include "sluice/config/loader.hpp"

#include <algorithm>

#include <cerrno>
#include <cstring>
#include <exception>
#include <fcntl.h>
#include <optional>
#include <unistd.h>

#include "json_reader.hpp"
#include "key_tables.hpp"
#include "sluice/core/clock.hpp"
#include "sluice/core/sha256.hpp"

namespace sluice {
namespace {

using config_detail::diagnostics;
using config_detail::json;
using config_detail::quote;

// Checks across sections, once each section has been read.
void check_across(const config& c, diagnostics& d) {
    if (c.redis && !c.redis->username.empty() && c.redis->password.empty())
        d.add("redis.username", "needs redis.password: Redis authenticates an ACL user by its password");
    // An expectation is checked on one of the quality windows.
    std::string windows;
    for (auto w : c.quality.windows_ms) windows += (windows.empty() ? "" : ", ") + format_duration(w);
    for (std::size_t s = 0; s < c.feature_sets.size(); ++s)
        for (std::size_t e = 0; e < c.feature_sets[s].expectations.size(); ++e) {
            const auto w = c.feature_sets[s].expectations[e].window_ms;
            if (std::find(c.quality.windows_ms.begin(), c.quality.windows_ms.end(), w) == c.quality.windows_ms.end())
                d.add("feature_sets[" + std::to_string(s) + "].expectations[" + std::to_string(e) + "].window",
                      "must be one of quality.windows (" + windows + "), got " + quote(format_duration(w)));
        }
    // Feast's feature services name features of configured sets; push sources write to them.
    auto find_set = [&](const std::string& name) -> const feature_set_config* {
        for (const auto& fs : c.feature_sets)
            if (fs.name == name || fs.versioned_name() == name) return &fs;
        return nullptr;
    };
    for (std::size_t i = 0; i < c.feature_services.size(); ++i) {
        const auto& svc = c.feature_services[i];
        const std::string p = "feature_services[" + std::to_string(i) + "]";
        for (std::size_t j = 0; j < i; ++j)
            if (c.feature_services[j].name == svc.name) d.add(p + ".name", "names the service " + quote(svc.name) + " twice");
        for (std::size_t f = 0; f < svc.features.size(); ++f) {
            const std::string& name = svc.features[f];
            const auto colon = name.find(':');
            const std::string fp = p + ".features[" + std::to_string(f) + "]";
            if (colon == std::string::npos) {
                d.add(fp, "must be \"set:field\", got " + quote(name));
                continue;
            }
            const auto* fs = find_set(name.substr(0, colon));
            const std::string column = name.substr(colon + 1);
            if (fs == nullptr) {
                d.add(fp, "names no feature set: " + quote(name.substr(0, colon)));
                continue;
            }
            const bool field = std::any_of(fs->fields.begin(), fs->fields.end(), [&](const field_config& x) { return x.name == column; });
            const bool agg = std::any_of(fs->aggregations.begin(), fs->aggregations.end(),
                                         [&](const aggregation_config& a) { return a.name == column; });
            if (!field && !agg) d.add(fp, "the set " + quote(fs->name) + " has no field or aggregation " + quote(column));
        }
    }
    for (std::size_t i = 0; i < c.push_sources.size(); ++i) {
        const auto& src = c.push_sources[i];
        const std::string p = "push_sources[" + std::to_string(i) + "]";
        for (std::size_t j = 0; j < i; ++j)
            if (c.push_sources[j].name == src.name) d.add(p + ".name", "names the push source " + quote(src.name) + " twice");
        for (std::size_t f = 0; f < src.feature_sets.size(); ++f)
            if (find_set(src.feature_sets[f]) == nullptr)
                d.add(p + ".feature_sets[" + std::to_string(f) + "]", "names no feature set: " + quote(src.feature_sets[f]));
    }
    const std::string& dlq = c.kafka.dead_letter_topic;
    if (dlq.empty()) return;
    for (const auto& fs : c.feature_sets)
        if (fs.topic == dlq)
            d.add("kafka.dead_letter_topic",
                  "must not be a feature set's topic (" + quote(dlq) + " feeds " + quote(fs.name) + ")");
}

}  // namespace

config_load_result load_config_text(const std::string& text) {
    config_load_result result;
    try {
        diagnostics d;
        std::vector<config_error> fatal;
        std::optional<json> doc = config_detail::parse_document(text, d, fatal);
        if (!doc) {
            result.errors = std::move(fatal);  // a syntax error (or absurd nesting) hides everything else
            return result;
        }
        config_detail::substitute_env(*doc, "", d);
        if (!doc->is_object()) {
            d.add("", "the config must be a JSON object, got " + config_detail::type_name(*doc));
        } else {
            config_detail::read_object(*doc, "", config_detail::root_keys(), result.cfg, d);
            check_across(result.cfg, d);
        }
        result.errors = d.take();
    } catch (const std::exception& e) {
        result.errors.push_back({"", std::string("internal error while reading the config: ") + e.what()});
    }
    return result;
}

config_load_result load_config_file(const std::string& path) {
    config_load_result result;
    const auto fail = [&](int err) {
        result.errors.push_back({"", "cannot read config file " + quote(path) + ": " + std::strerror(err)});
        return result;
    };
    try {
        const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) return fail(errno);
        std::string text;
        char buf[65536];
        for (;;) {
            const ssize_t n = ::read(fd, buf, sizeof buf);
            if (n < 0) {
                if (errno == EINTR) continue;
                const int err = errno;
                ::close(fd);
                return fail(err);
            }
            if (n == 0) break;
            text.append(buf, static_cast<std::size_t>(n));
        }
        ::close(fd);
        result = load_config_text(text);
        result.cfg.origin = {path, sha256_hex(text), now_ms()};
        return result;
    } catch (const std::exception& e) {
        result.errors.push_back({"", "cannot read config file " + quote(path) + ": " + e.what()});
        return result;
    }
}

std::string format_errors(const std::vector<config_error>& errors) {
    std::string out;
    for (const auto& e : errors) {
        if (!e.path.empty()) out += e.path + ": ";
        out += e.message;
        out += '\n';
    }
    return out;
}

}  // namespace sluice
