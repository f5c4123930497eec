#pragma once
// The columns of a feature set's latest state: its fields, then its aggregations. This is the
// order of latest_entry::values, of the <set>_latest table, and of the API's "values".

#include <string>
#include <vector>

#include "sluice/config/config.hpp"

namespace sluice {

struct latest_column {
    std::string name;
    field_type type;
    bool aggregation = false;
};

/// The type an aggregation's value has: count → int, avg → double, sum/min/max/last → the
/// type of the field they read.
field_type result_type(const feature_set_config& set, const aggregation_config& agg);

/// Fields in declared order, then aggregations in declared order.
std::vector<latest_column> latest_columns(const feature_set_config& set);

}  // namespace sluice
