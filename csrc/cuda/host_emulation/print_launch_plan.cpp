// Prints the CUDA op's launch plan (../launch_plan.h) for given group sizes, as one JSON
// object, so tests can check it on CPU (tests/test_launch_plan.py). Not part of the library.
//   print_launch_plan exact G N STATS EMPTY H0 .. H9   exact histogram: H_p groups of path p
//   print_launch_plan hint G N HINT                    only max_group_size known
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "../launch_plan.h"

int main(int argc, char** argv) {
  using namespace gapo::team;
  SizeKnowledge k;
  if (argc >= 5 && std::strcmp(argv[1], "hint") == 0) {
    k.num_groups = std::atoll(argv[2]);
    k.num_rewards = std::atoll(argv[3]);
    k.hint = std::atoll(argv[4]);
  } else if (argc == 6 + kNumPaths && std::strcmp(argv[1], "exact") == 0) {
    k.num_groups = std::atoll(argv[2]);
    k.num_rewards = std::atoll(argv[3]);
    k.exact = true;
    k.every_group_needs_a_team = std::atoll(argv[4]) != 0;
    k.empty_groups = std::atoll(argv[5]);
    for (int p = 0; p < kNumPaths; ++p) k.histogram[p] = std::atoll(argv[6 + p]);
  } else {
    std::fprintf(stderr, "usage: print_launch_plan exact G N STATS EMPTY H0..H%d | hint G N HINT\n", kNumPaths - 1);
    return 2;
  }
  const LaunchPlan plan = plan_launch(k);
  auto list = [](const char* name, const int64_t* v) {
    std::printf("\"%s\": [", name);
    for (int p = 0; p < kNumPaths; ++p) std::printf("%s%lld", p ? ", " : "", static_cast<long long>(v[p]));
    std::printf("], ");
  };
  std::printf("{\"listed\": %s, \"direct_class\": %d, \"direct_blocks\": %lld, ", plan.listed ? "true" : "false",
              plan.direct_class, static_cast<long long>(plan.direct_blocks));
  list("list_room", plan.list_room);
  list("list_offset", plan.list_offset);
  list("blocks", plan.blocks);
  std::printf("\"list_total\": %lld, \"size_limit\": %lld, \"top_path\": %d, \"empty_groups_listed\": %s, "
              "\"classify\": %s, \"large_segments\": %lld, \"fused_launches\": %d, ",
              static_cast<long long>(plan.list_total), static_cast<long long>(plan.size_limit), plan.top_path,
              plan.empty_groups_listed ? "true" : "false", plan.classify ? "true" : "false",
              static_cast<long long>(plan.large_segments), plan.launches());
  std::printf("\"capacity\": [");
  for (int c = 0; c < kNumSizeClasses; ++c) std::printf("%s%lld", c ? ", " : "", static_cast<long long>(class_capacity(c)));
  std::printf("], \"block_threads\": [");
  for (int c = 0; c < kNumSizeClasses; ++c) std::printf("%s%d", c ? ", " : "", class_block_threads(c));
  std::printf("], \"teams_per_block\": [");
  for (int c = 0; c < kNumSizeClasses; ++c) std::printf("%s%d", c ? ", " : "", class_teams_per_block(c));
  std::printf("]}\n");
  return 0;
}
