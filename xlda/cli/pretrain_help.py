"""One line of ``--help`` per pretrain_trillion.py flag: Megatron-LM's own words where the flag is
Megatron's (megatron/training/arguments.py), xlda's meaning where the flag is xlda's or behaves
differently here. The CLI appends each flag's default (RunConfig's, before any --config recipe)."""

HELP = {
    # model
    "--num-layers": "Number of transformer layers.",
    "--hidden-size": "Transformer hidden size.",
    "--num-attention-heads": "Number of transformer attention heads.",
    "--num-query-groups": "Number of query groups for group-query attention (None: one per head, "
                          "i.e. MHA).",
    "--group-query-attention": "Use group-query attention (implied here by --num-query-groups; "
                               "accepted for Megatron-LM command lines).",
    "--ffn-hidden-size": "Transformer Feed-Forward Network hidden size (None: 4*hidden-size).",
    "--kv-channels": "Projection weights dimension in multi-head attention (None: "
                     "hidden-size // num-attention-heads).",
    "--vocab-size": "Size of vocab before EOD or padding (mock data without a tokenizer; a "
                    "tokenizer sets it).",
    "--make-vocab-size-divisible-by": "Pad the vocab size to be divisible by this value (times "
                                      "the tensor-parallel size), for computational efficiency.",
    "--max-position-embeddings": "Maximum number of position embeddings to use; the size of a "
                                 "learned position embedding (None: --seq-length).",
    "--position-embedding-type": "Position embedding type.",
    "--rotary-base": "Base to use for rotary positional embeddings.",
    "--rotary-percent": "Percent of rotary dimension to use (1.0 = 100%%).",
    "--normalization": "Which normalization technique to use.",
    "--norm-epsilon": "Epsilon for layer norm and RMS norm.",
    "--swiglu": "Use gated linear units and SiLU activation instead of default gelu.",
    "--disable-bias-linear": "Disable bias in the linear layers.",
    "--add-bias-linear": "Enable bias in the linear layers (the opposite of "
                         "--disable-bias-linear).",
    "--qk-layernorm": "Whether to layer normalize the q and k attention embeddings.",
    "--untie-embeddings-and-output-weights": "Untie embeddings and output weights.",
    "--init-method-std": "Standard deviation of the zero mean normal distribution used for "
                         "weight initialization.",
    "--hidden-dropout": "Dropout probability for hidden state transformer.",
    "--attention-dropout": "Post attention dropout probability.",
    "--mtp-num-layers": "Number of Multi-Token Prediction (MTP) layers; None/0 = off.",
    "--mtp-loss-scaling-factor": "Scaling factor of the Multi-Token Prediction (MTP) loss (the "
                                 "mean over depths times this is added to the LM loss).",
    "--transformer-impl": "Which Transformer implementation to use (transformer_engine needs "
                          "Transformer Engine, i.e. a GPU).",
    "--attention-backend": "XLDA attention executor: sdpa (dense-mask oracle), thd (torch "
                           "reference of TE's THD decomposition), flex (FlexAttention; training "
                           "needs a GPU), te (Transformer Engine, GPU).",
    "--xlda-mask": "XLDA: attention mask rule. xlda: own document + earlier documents of other "
                   "languages; document: own document only; causal: no document masking.",
    "--bf16": "Run model in bfloat16 mode (GPU).",
    "--fp16": "Run model in fp16 mode (GPU).",
    "--fp8-format": "Which fp8 format scheme to use for FP8 tensors in the forward and backward "
                    "pass (needs Transformer Engine).",
    "--fp8-recipe": "Which fp8 recipe to use for FP8 tensors in the forward and backward pass.",
    "--sequence-parallel": "Enable sequence parallel optimization (needs Transformer Engine "
                           "norms; off on CPU).",
    "--recompute-granularity": "Checkpoint activations to train larger models, sequences and "
                               "batch sizes; only 'selective' (MLP) with the XLDA mask.",
    # parallel
    "--tensor-model-parallel-size": "Degree of tensor model parallelism.",
    "--pipeline-model-parallel-size": "Degree of pipeline model parallelism.",
    "--context-parallel-size": "Degree of context parallelism.",
    "--use-distributed-optimizer": "Use distributed optimizer (shards optimizer state over "
                                   "data-parallel ranks; GPU).",
    "--overlap-grad-reduce": "If set, overlap DDP grad reduce.",
    "--distributed-backend": "Which backend to use for distributed training (None: nccl with a "
                             "GPU, gloo without).",
    # optimizer
    "--optimizer": "Optimizer function.",
    "--lr": "Initial learning rate. Depending on decay style and initial warmup, the learning "
            "rate at each iteration would be different.",
    "--min-lr": "Minimum value for learning rate. The scheduler clips values below this "
                "threshold.",
    "--weight-decay": "Weight decay coefficient for L2 regularization.",
    "--adam-beta1": "First coefficient for computing running averages of gradient and its "
                    "square.",
    "--adam-beta2": "Second coefficient for computing running averages of gradient and its "
                    "square.",
    "--adam-eps": "Term added to the denominator to improve numerical stability.",
    "--clip-grad": "Gradient clipping based on global L2 norm.",
    # scheduler
    "--lr-decay-style": "Learning rate decay function.",
    "--lr-wsd-decay-style": "Decay style for the annealing phase of WSD.",
    "--lr-warmup-iters": "Number of iterations to linearly warmup learning rate over.",
    "--lr-decay-iters": "Number of iterations to decay learning rate over (None: --train-iters).",
    "--lr-wsd-decay-iters": "Number of iterations for the annealing phase in the WSD schedule "
                            "(None: 10%% of the decay iterations); the XLDA annealing data blend "
                            "starts with it.",
    "--lr-warmup-init": "Initial value for learning rate warmup. The scheduler starts warmup "
                        "from this value.",
    "--start-weight-decay": "Initial weight decay coefficient for L2 regularization (None: "
                            "--weight-decay).",
    "--end-weight-decay": "End of run weight decay coefficient for L2 regularization (None: "
                          "--weight-decay).",
    "--weight-decay-incr-style": "Weight decay increment function.",
    # checkpoint
    "--save": "Output directory to save checkpoints to.",
    "--load": "Directory containing a model checkpoint; resumes from it. A checkpoint without "
              "optimizer state (e.g. from tools/checkpoint/convert.py) loads weights only.",
    "--save-interval": "Number of iterations between persistent checkpoint saves (None: only at "
                       "the end).",
    "--ckpt-format": "Checkpoint format: torch_dist, the only one xlda writes (accepted as in "
                     "Megatron-LM; checkpoints are always torch_dist).",
    "--finetune": "Load model for finetuning. Do not load optimizer or rng state from "
                  "checkpoint and set iteration to 0.",
    "--no-exit-on-signal": "Do not save and exit on SIGTERM/SIGUSR1 (by default a signal "
                           "checkpoints and stops cleanly).",
    # logging
    "--log-interval": "Report loss and timing interval.",
    "--tensorboard-dir": "Write TensorBoard logs to this directory (None: no TensorBoard).",
    "--peak-tflops": "Peak TFLOP/s per device for the MFU column (None: the dense bf16 peak "
                     "of a known GPU, e.g. 989 for H100/H200; no MFU on CPU or an unlisted "
                     "device).",
    # training
    "--micro-batch-size": "Batch size per model instance (local batch size). Global batch size "
                          "is local batch size times data parallel size times number of micro "
                          "batches.",
    "--global-batch-size": "Training batch size; a multiple of micro-batch-size times "
                           "data-parallel-size.",
    "--train-iters": "Total number of iterations to train over all training runs.",
    "--eval-interval": "Interval between running evaluation on validation set (None: never).",
    "--eval-suite": "A benchmark suite YAML scored during training with lm-eval "
                    "(docs/evaluate.md; e.g. examples/evaluate/smoke.yaml); checked before "
                    "training starts.",
    "--eval-suite-interval": "Iterations between two scorings of --eval-suite.",
    "--eval-suite-limit": "Items per task of --eval-suite (None: all).",
    "--eval-iters": "Number of iterations to run for evaluation validation/test for.",
    "--seed": "Random seed used for python, numpy, pytorch, and cuda (and the XLDA packing "
              "order).",
    "--exit-interval": "Exit the program after the iteration is divisible by this value "
                       "(saving first).",
    "--run-dir": "XLDA: directory for run_config.yaml and metrics.jsonl (None: the --save "
                 "directory).",
    # data
    "--data-path": "Prefixes of per-language indexed datasets "
                   "(<output-prefix>_<lang>_text_document from tools/preprocess_data.py), or "
                   "Megatron's 'weight prefix weight prefix ...': the weights then become the "
                   "XLDA language mixture (xlda-alpha 0, xlda-beta = summed weights per "
                   "language).",
    "--mock-data": "Skip data loading and validation and opt to artificially generate mock "
                   "data when set.",
    "--split": "Comma-separated list of proportions for training, validation, and test split "
               "(applied per language). For example 90,5,5 trains on 90%% of the documents.",
    "--tokenizer-type": "What type of tokenizer to use.",
    "--tokenizer-model": "Tokenizer model file (tokenizer.json or SentencePiece .model); must be "
                         "the one the data were preprocessed with.",
    "--xlda-alpha": "XLDA: the next sequence's language is drawn from P(l) = alpha * corpus "
                    "token share of l + (1 - alpha) * beta_l.",
    "--xlda-beta": "XLDA: target language weights as lang=weight pairs, e.g. "
                   "en=0.4,ko=0.2,ja=0.2,zh=0.2 (finite, >= 0, normalised; None: uniform).",
    "--xlda-rho": "XLDA: probability that the next packed document switches language.",
    "--xlda-max-kv-expansion": "XLDA: cap on a sample's K/V expansion (K/V rows the THD/TE "
                               "executors gather / sequence length, >= 1; None: report only).",
    "--xlda-kv-cap-action": "XLDA: what a sample above --xlda-max-kv-expansion does: flag "
                            "(count and log) or raise (stop the run).",
    "--annealing-data-path": "XLDA: data prefixes of the annealing blend used once WSD decay "
                             "starts (None: the --data-path prefixes).",
    "--annealing-multilingual-multiplier": "XLDA: the non-English share of the annealing blend "
                                           "is multiplied by this.",
    "--no-annealing": "XLDA: keep the main data blend through the WSD decay (no annealing "
                      "blend switch).",
    "--reset-position-ids": "Reset position ids after end-of-document token (only with "
                            "--position-embedding-type learned_absolute: megatron-core builds "
                            "RoPE from the sequence length).",
    "--seq-length": "Maximum sequence length to process (the model's and the data's; >= 2, as "
                    "every sample packs >= 2 languages).",
}
