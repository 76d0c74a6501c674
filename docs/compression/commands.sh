#!/bin/sh
# The commands of this experiment (`lemur experiment compression`), in order.
set -e
# resumed: lemur train autoencoder --resume pexperiment/runs/ae-80x
lemur train autoencoder --resume pexperiment/runs/ae-80x --steps 1500 --backend cpu
lemur encode --autoencoder pexperiment/runs/ae-80x --data pdata --out pexperiment/latents/80x-ae1500 --augment 1 --backend cpu
lemur train diffusion --latents pexperiment/latents/80x-ae1500 --config pexperiment/configs/denoiser-80x.json --out pexperiment/runs/diffusion-80x-ae1500 --steps 600 --batch 16 --lr 0.001 --warmup 30 --checkpoint-every 60 --log-every 30 --optimizer adamw --backend cpu
lemur train surrogate --latents pexperiment/latents/80x-ae1500 --config pexperiment/configs/surrogate-80x.json --out pexperiment/runs/surrogate-80x-ae1500 --steps 600 --batch 16 --lr 0.001 --warmup 30 --checkpoint-every 60 --log-every 30 --optimizer adamw --backend cpu
lemur eval --run pexperiment/runs/ae-80x --data pdata --trajectories 4 --out pexperiment/eval/ae-80x-step1500 --stride 4 --backend cpu
lemur eval --run pexperiment/runs/diffusion-80x-ae1500 --data pdata --trajectories 4 --out pexperiment/eval/diffusion-80x-ae1500-step600 --ensemble 8 --steps 16 --sampler ab --backend cpu
lemur eval --run pexperiment/runs/surrogate-80x-ae1500 --data pdata --trajectories 4 --out pexperiment/eval/surrogate-80x-ae1500-step600 --backend cpu
lemur train autoencoder --data pdata --config pexperiment/configs/ae-320x.json --out pexperiment/runs/ae-320x --steps 1500 --batch 16 --lr 0.001 --warmup 75 --checkpoint-every 150 --log-every 75 --optimizer adamw --backend cpu
lemur encode --autoencoder pexperiment/runs/ae-320x --data pdata --out pexperiment/latents/320x-ae1500 --augment 1 --backend cpu
lemur train diffusion --latents pexperiment/latents/320x-ae1500 --config pexperiment/configs/denoiser-320x.json --out pexperiment/runs/diffusion-320x-ae1500 --steps 600 --batch 16 --lr 0.001 --warmup 30 --checkpoint-every 60 --log-every 30 --optimizer adamw --backend cpu
lemur train surrogate --latents pexperiment/latents/320x-ae1500 --config pexperiment/configs/surrogate-320x.json --out pexperiment/runs/surrogate-320x-ae1500 --steps 600 --batch 16 --lr 0.001 --warmup 30 --checkpoint-every 60 --log-every 30 --optimizer adamw --backend cpu
lemur eval --run pexperiment/runs/ae-320x --data pdata --trajectories 4 --out pexperiment/eval/ae-320x-step1500 --stride 4 --backend cpu
lemur eval --run pexperiment/runs/diffusion-320x-ae1500 --data pdata --trajectories 4 --out pexperiment/eval/diffusion-320x-ae1500-step600 --ensemble 8 --steps 16 --sampler ab --backend cpu
lemur eval --run pexperiment/runs/surrogate-320x-ae1500 --data pdata --trajectories 4 --out pexperiment/eval/surrogate-320x-ae1500-step600 --backend cpu
lemur train autoencoder --data pdata --config pexperiment/configs/ae-1280x.json --out pexperiment/runs/ae-1280x --steps 1500 --batch 16 --lr 0.001 --warmup 75 --checkpoint-every 150 --log-every 75 --optimizer adamw --backend cpu
lemur encode --autoencoder pexperiment/runs/ae-1280x --data pdata --out pexperiment/latents/1280x-ae1500 --augment 1 --backend cpu
lemur train diffusion --latents pexperiment/latents/1280x-ae1500 --config pexperiment/configs/denoiser-1280x.json --out pexperiment/runs/diffusion-1280x-ae1500 --steps 600 --batch 16 --lr 0.001 --warmup 30 --checkpoint-every 60 --log-every 30 --optimizer adamw --backend cpu
lemur train surrogate --latents pexperiment/latents/1280x-ae1500 --config pexperiment/configs/surrogate-1280x.json --out pexperiment/runs/surrogate-1280x-ae1500 --steps 600 --batch 16 --lr 0.001 --warmup 30 --checkpoint-every 60 --log-every 30 --optimizer adamw --backend cpu
lemur eval --run pexperiment/runs/ae-1280x --data pdata --trajectories 4 --out pexperiment/eval/ae-1280x-step1500 --stride 4 --backend cpu
lemur eval --run pexperiment/runs/diffusion-1280x-ae1500 --data pdata --trajectories 4 --out pexperiment/eval/diffusion-1280x-ae1500-step600 --ensemble 8 --steps 16 --sampler ab --backend cpu
lemur eval --run pexperiment/runs/surrogate-1280x-ae1500 --data pdata --trajectories 4 --out pexperiment/eval/surrogate-1280x-ae1500-step600 --backend cpu
