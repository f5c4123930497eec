#include "sluice/config/config.hpp"

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

int config::find_set(const std::string& name) const {
    for (std::size_t i = 0; i < feature_sets.size(); ++i)
        if (feature_sets[i].name == name) return static_cast<int>(i);
    return -1;
}

}  // namespace sluice
