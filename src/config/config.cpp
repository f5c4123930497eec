#include "sluice/config/config.hpp"

#include <cstdio>
#include <utility>

namespace sluice {

const char* to_string(agg_op op) {
    switch (op) {
        case agg_op::count: return "count";
        case agg_op::sum: return "sum";
        case agg_op::avg: return "avg";
        case agg_op::min: return "min";
        case agg_op::max: return "max";
        case agg_op::last: return "last";
    }
    return "unknown";
}

std::string format_duration(std::int64_t ms) {
    if (ms == 0) return "0";
    static const std::pair<std::int64_t, const char*> units[] = {
        {86400000, "d"}, {3600000, "h"}, {60000, "m"}, {1000, "s"}, {1, "ms"}};
    for (const auto& [size, unit] : units)
        if (ms % size == 0) return std::to_string(ms / size) + unit;
    return std::to_string(ms) + "ms";
}

const char* to_string(expectation_kind k) {
    switch (k) {
        case expectation_kind::null_rate: return "null_rate";
        case expectation_kind::range: return "range";
        case expectation_kind::allowed: return "allowed";
        case expectation_kind::mean: return "mean";
        case expectation_kind::distinct: return "distinct";
        case expectation_kind::records: return "records";
        case expectation_kind::freshness: return "freshness";
        case expectation_kind::drift: return "drift";
    }
    return "unknown";
}

namespace {

std::string number_text(double x) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.6g", x);
    return buf;
}

// "between 1 and 5", "at least 1", "at most 5".
std::string bounds_text(const std::optional<double>& min, const std::optional<double>& max) {
    if (min && max) return "between " + number_text(*min) + " and " + number_text(*max);
    if (min) return "at least " + number_text(*min);
    return "at most " + number_text(max.value_or(0));
}

}  // namespace

std::string expectation_config::describe() const {
    std::string what;
    const std::string outside = max_outside > 0 ? " (" + number_text(max_outside) + " outside at most)" : "";
    switch (kind) {
        case expectation_kind::null_rate: what = field + ": null rate at most " + number_text(max.value_or(0)); break;
        case expectation_kind::range: what = field + ": values " + bounds_text(min, max) + outside; break;
        case expectation_kind::allowed:
            what = field + ": " + std::to_string(values.size()) + " allowed values" + outside;
            break;
        case expectation_kind::mean: what = field + ": mean " + bounds_text(min, max); break;
        case expectation_kind::distinct: what = field + ": distinct values " + bounds_text(min, max); break;
        case expectation_kind::records: what = "records " + bounds_text(min, max); break;
        case expectation_kind::freshness:
            what = "freshness p99 at most " + format_duration(static_cast<std::int64_t>(max.value_or(0)));
            break;
        case expectation_kind::drift: what = field + ": drift (PSI) at most " + number_text(max.value_or(0)); break;
    }
    return what + " per " + format_duration(window_ms) + (severity == expectation_severity::quarantine ? ", quarantine" : "");
}

int config::find_set(const std::string& name) const {
    for (std::size_t i = 0; i < feature_sets.size(); ++i)
        if (feature_sets[i].name == name) return static_cast<int>(i);
    return -1;
}

}  // namespace sluice
