#!/bin/bash
# A bash script with a .py name: the original project's README runs
#
#     bash launch_eval.py sbgm <experiment name>/<id> --mode=generate
#
# so this file keeps that name and hands everything to launch_eval.sh (the real launcher;
# submit that one with sbatch, its header holds the #SBATCH flags). The two quote lines below
# make the file valid Python as well: bash runs ":" and then exec's launch_eval.sh, while
# Python sees a string and runs the code after it, so `python launch_eval.py ...` works too.
""":"
exec bash "$(dirname "${BASH_SOURCE[0]}")/launch_eval.sh" "$@"
"""
import os
import sys

launcher = os.path.join(os.path.dirname(os.path.abspath(__file__)), "launch_eval.sh")
os.execvp("bash", ["bash", launcher] + sys.argv[1:])
