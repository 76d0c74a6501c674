#!/bin/sh
# The commands of this experiment (`lemur experiment compression`), in order.
set -e
lemur train autoencoder --data data --config experiment/configs/ae-80x.json --out experiment/runs/ae-80x --steps 2000 --batch 16 --lr 0.001 --warmup 100 --checkpoint-every 200 --log-every 100 --backend cpu
lemur encode --autoencoder experiment/runs/ae-80x --data data --out experiment/latents/80x-ae2000 --augment 1 --backend cpu
lemur train diffusion --latents experiment/latents/80x-ae2000 --config experiment/configs/denoiser-80x.json --out experiment/runs/diffusion-80x-ae2000 --steps 800 --batch 16 --lr 0.001 --warmup 40 --checkpoint-every 80 --log-every 40 --backend cpu
lemur train surrogate --latents experiment/latents/80x-ae2000 --config experiment/configs/surrogate-80x.json --out experiment/runs/surrogate-80x-ae2000 --steps 800 --batch 16 --lr 0.001 --warmup 40 --checkpoint-every 80 --log-every 40 --backend cpu
lemur eval --run experiment/runs/ae-80x --data data --trajectories 4 --out experiment/eval/ae-80x-step2000 --stride 4 --backend cpu
lemur eval --run experiment/runs/diffusion-80x-ae2000 --data data --trajectories 4 --out experiment/eval/diffusion-80x-ae2000-step800 --ensemble 8 --steps 16 --sampler ab --backend cpu
lemur eval --run experiment/runs/surrogate-80x-ae2000 --data data --trajectories 4 --out experiment/eval/surrogate-80x-ae2000-step800 --backend cpu
# resumed: lemur train autoencoder --resume experiment/runs/ae-320x
lemur train autoencoder --resume experiment/runs/ae-320x --steps 2000 --backend cpu
lemur encode --autoencoder experiment/runs/ae-320x --data data --out experiment/latents/320x-ae2000 --augment 1 --backend cpu
lemur train diffusion --latents experiment/latents/320x-ae2000 --config experiment/configs/denoiser-320x.json --out experiment/runs/diffusion-320x-ae2000 --steps 800 --batch 16 --lr 0.001 --warmup 40 --checkpoint-every 80 --log-every 40 --backend cpu
lemur train surrogate --latents experiment/latents/320x-ae2000 --config experiment/configs/surrogate-320x.json --out experiment/runs/surrogate-320x-ae2000 --steps 800 --batch 16 --lr 0.001 --warmup 40 --checkpoint-every 80 --log-every 40 --backend cpu
lemur eval --run experiment/runs/ae-320x --data data --trajectories 4 --out experiment/eval/ae-320x-step2000 --stride 4 --backend cpu
lemur eval --run experiment/runs/diffusion-320x-ae2000 --data data --trajectories 4 --out experiment/eval/diffusion-320x-ae2000-step800 --ensemble 8 --steps 16 --sampler ab --backend cpu
lemur eval --run experiment/runs/surrogate-320x-ae2000 --data data --trajectories 4 --out experiment/eval/surrogate-320x-ae2000-step800 --backend cpu
# resumed: lemur train autoencoder --resume experiment/runs/ae-1280x
lemur train autoencoder --resume experiment/runs/ae-1280x --steps 2000 --backend cpu
lemur encode --autoencoder experiment/runs/ae-1280x --data data --out experiment/latents/1280x-ae2000 --augment 1 --backend cpu
lemur train diffusion --latents experiment/latents/1280x-ae2000 --config experiment/configs/denoiser-1280x.json --out experiment/runs/diffusion-1280x-ae2000 --steps 800 --batch 16 --lr 0.001 --warmup 40 --checkpoint-every 80 --log-every 40 --backend cpu
lemur train surrogate --latents experiment/latents/1280x-ae2000 --config experiment/configs/surrogate-1280x.json --out experiment/runs/surrogate-1280x-ae2000 --steps 800 --batch 16 --lr 0.001 --warmup 40 --checkpoint-every 80 --log-every 40 --backend cpu
lemur eval --run experiment/runs/ae-1280x --data data --trajectories 4 --out experiment/eval/ae-1280x-step2000 --stride 4 --backend cpu
lemur eval --run experiment/runs/diffusion-1280x-ae2000 --data data --trajectories 4 --out experiment/eval/diffusion-1280x-ae2000-step800 --ensemble 8 --steps 16 --sampler ab --backend cpu
lemur eval --run experiment/runs/surrogate-1280x-ae2000 --data data --trajectories 4 --out experiment/eval/surrogate-1280x-ae2000-step800 --backend cpu
