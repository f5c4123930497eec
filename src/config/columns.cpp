#include "sluice/config/columns.hpp"

namespace sluice {

field_type result_type(const feature_set_config& set, const aggregation_config& agg) {
    switch (agg.op) {
        case agg_op::count: return field_type::int64;
        case agg_op::avg: return field_type::float64;
        default: return set.fields.at(agg.field_index).type;
    }
}

std::vector<latest_column> latest_columns(const feature_set_config& set) {
    std::vector<latest_column> out;
    out.reserve(set.fields.size() + set.aggregations.size());
    for (const auto& f : set.fields) out.push_back({f.name, f.type, false});
    for (const auto& a : set.aggregations) out.push_back({a.name, result_type(set, a), true});
    return out;
}

}  // namespace sluice
