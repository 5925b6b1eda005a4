#!/bin/sh
exec myapp
