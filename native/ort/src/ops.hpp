// The ops of the ai.tokenkernels domain, by file.
#pragma once

#include <vector>

#include "node.hpp"

namespace tk_ort {

void add_family_ops(std::vector<OpSpec>& ops);  // ops_families.cpp
void add_recipe_ops(std::vector<OpSpec>& ops);  // ops_recipes.cpp
void add_video_ops(std::vector<OpSpec>& ops);   // ops_video.cpp

}  // namespace tk_ort
