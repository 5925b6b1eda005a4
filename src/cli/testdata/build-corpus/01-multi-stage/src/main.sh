#!/bin/sh
echo serving on "$@"
