#pragma once
// The small feature set the store tests build their configs around: "s" on topic "t", keyed by
// member "k", event time "ts", with the fields given (optional, no bounds).

#include <string>
#include <utility>
#include <vector>

#include "sluice/config/config.hpp"

namespace sluice::testing_support {

inline feature_set_config small_set(const std::vector<std::pair<std::string, field_type>>& fields) {
    feature_set_config set;
    set.name = "s";
    set.topic = "t";
    set.key_field = "k";
    set.event_time_field = "ts";
    for (const auto& [name, type] : fields) set.fields.push_back({name, type, false, {}, {}, {}});
    return set;
}

}  // namespace sluice::testing_support
