#include "app/cli.h"

int main(int argc, char** argv) { return lms::app::RunCli(argc, argv); }
